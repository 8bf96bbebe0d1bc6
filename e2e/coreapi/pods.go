package coreapi

// What kube-apiserver does for Pods beyond storing them, which the node agent (our kubelet)
// relies on: graceful deletion (a delete sets deletionTimestamp and the grace period; the
// kubelet stops the containers and then deletes the Pod for good with a grace period of 0),
// and the columns kubectl get pods prints.

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// podGracefulDelete is kube's podStrategy.CheckGracefulDelete: the grace period asked for, else
// the pod's terminationGracePeriodSeconds; 0 (deleted at once) for a pod no node runs or one
// whose containers have all ended, as nobody would be there to finish the delete.
func podGracefulDelete(obj runtime.Object, options *metav1.DeleteOptions) bool {
	if options == nil {
		return false
	}
	pod := obj.(*corev1.Pod)
	period := int64(0)
	if options.GracePeriodSeconds != nil {
		period = *options.GracePeriodSeconds
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		period = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		period = 0
	}
	options.GracePeriodSeconds = &period
	return true
}

// gracefulStrategy is the strategy of a kind with gracefulDelete (Pods): deletes are graceful.
type gracefulStrategy struct{ strategy }

func (s gracefulStrategy) CheckGracefulDelete(_ context.Context, obj runtime.Object, options *metav1.DeleteOptions) bool {
	return s.k.gracefulDelete(obj, options)
}

// podColumns are kubectl get pods' READY, STATUS and RESTARTS, computed as kubectl's printer
// computes them from the status the kubelet writes.
var podColumns = []column{
	{"Ready", func(o runtime.Object) interface{} {
		p := o.(*corev1.Pod)
		ready := 0
		for _, c := range p.Status.ContainerStatuses {
			if c.Ready && c.State.Running != nil {
				ready++
			}
		}
		return fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers))
	}},
	{"Status", func(o runtime.Object) interface{} { return podReason(o.(*corev1.Pod)) }},
	{"Restarts", func(o runtime.Object) interface{} {
		restarts := int32(0)
		for _, c := range o.(*corev1.Pod).Status.ContainerStatuses {
			restarts += c.RestartCount
		}
		return fmt.Sprint(restarts)
	}},
}

// podWideColumns are what -o wide adds: the pod's address and its node.
var podWideColumns = []column{
	{"IP", func(o runtime.Object) interface{} { return orNone(o.(*corev1.Pod).Status.PodIP) }},
	{"Node", func(o runtime.Object) interface{} { return orNone(o.(*corev1.Pod).Spec.NodeName) }},
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// podReason is the STATUS kubectl prints: the phase, unless a container says why it waits or
// how it ended (CrashLoopBackOff, ErrImagePull, Error…); Terminating once deleted.
func podReason(p *corev1.Pod) string {
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	running := false
	for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
		c := p.Status.ContainerStatuses[i]
		switch {
		case c.State.Waiting != nil && c.State.Waiting.Reason != "":
			reason = c.State.Waiting.Reason
		case c.State.Terminated != nil && c.State.Terminated.Reason != "":
			reason = c.State.Terminated.Reason
		case c.State.Terminated != nil && c.State.Terminated.Signal != 0:
			reason = fmt.Sprintf("Signal:%d", c.State.Terminated.Signal)
		case c.State.Terminated != nil:
			reason = fmt.Sprintf("ExitCode:%d", c.State.Terminated.ExitCode)
		case c.Ready && c.State.Running != nil:
			running = true
		}
	}
	if reason == "Completed" && running {
		reason = "Running"
	}
	if p.DeletionTimestamp != nil {
		reason = "Terminating"
	}
	return reason
}
