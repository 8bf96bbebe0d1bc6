package coreapi

import (
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// There are no internal versions of the core types outside k8s.io/kubernetes. The external
// types serve as their own internal version: each is registered under both v1 and __internal,
// and converting between the two only sets the kind (runtime.Scheme does no copy for a type
// registered in the target version). events.k8s.io/v1 Events are their own type, stored as
// core/v1 Events, as kube-apiserver does.
var (
	Scheme = runtime.NewScheme()
	Codecs = serializer.NewCodecFactory(Scheme)

	eventsInternal = schema.GroupVersion{Group: eventsv1.GroupName, Version: runtime.APIVersionInternal}
)

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func init() {
	must(corev1.AddToScheme(Scheme))
	must(eventsv1.AddToScheme(Scheme))
	must(rbacv1.AddToScheme(Scheme))
	must(policyv1.AddToScheme(Scheme))
	// serviceaccounts/token takes and answers an authentication.k8s.io/v1 TokenRequest, and
	// authentication.k8s.io/v1 serves SelfSubjectReviews; the handlers convert them to that
	// group's internal version, which they are too.
	must(authenticationv1.AddToScheme(Scheme))
	Scheme.AddKnownTypes(schema.GroupVersion{Group: authenticationv1.GroupName, Version: runtime.APIVersionInternal},
		&authenticationv1.TokenRequest{}, &authenticationv1.SelfSubjectReview{})
	for _, k := range kinds {
		Scheme.AddKnownTypes(schema.GroupVersion{Group: k.group, Version: runtime.APIVersionInternal}, k.new(), k.newList())
	}
	for _, gv := range []schema.GroupVersion{corev1.SchemeGroupVersion, eventsv1.SchemeGroupVersion, rbacv1.SchemeGroupVersion, policyv1.SchemeGroupVersion, authenticationv1.SchemeGroupVersion} {
		must(Scheme.SetVersionPriority(gv))
	}
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	Scheme.AddUnversionedTypes(schema.GroupVersion{Version: "v1"},
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
	must(Scheme.AddConversionFunc((*corev1.Event)(nil), (*eventsv1.Event)(nil), func(a, b interface{}, _ conversion.Scope) error {
		coreToEvents(a.(*corev1.Event), b.(*eventsv1.Event))
		return nil
	}))
	must(Scheme.AddConversionFunc((*eventsv1.Event)(nil), (*corev1.Event)(nil), func(a, b interface{}, _ conversion.Scope) error {
		eventsToCore(a.(*eventsv1.Event), b.(*corev1.Event))
		return nil
	}))
	for _, k := range kinds {
		k := k
		gvk := schema.GroupVersionKind{Group: k.group, Version: "v1", Kind: k.kind}
		must(Scheme.AddFieldLabelConversionFunc(gvk, func(label, value string) (string, string, error) {
			if label == "metadata.name" || label == "metadata.namespace" {
				return label, value, nil
			}
			if k.fields != nil {
				if _, ok := k.fields(k.new())[label]; ok {
					return label, value, nil
				}
			}
			return runtime.DefaultMetaV1FieldSelectorConversion(label, value)
		}))
	}
}

// kindAs is a GroupVersioner that always answers one kind: the storage codec of
// events.k8s.io Events encodes them as core/v1 Events and decodes them back.
type kindAs schema.GroupVersionKind

func (k kindAs) KindForGroupVersionKinds([]schema.GroupVersionKind) (schema.GroupVersionKind, bool) {
	return schema.GroupVersionKind(k), true
}

func (k kindAs) Identifier() string { return "kind-as:" + schema.GroupVersionKind(k).String() }

func coreToEvents(in *corev1.Event, out *eventsv1.Event) {
	*out = eventsv1.Event{
		ObjectMeta:               in.ObjectMeta,
		EventTime:                in.EventTime,
		ReportingController:      in.ReportingController,
		ReportingInstance:        in.ReportingInstance,
		Action:                   in.Action,
		Reason:                   in.Reason,
		Regarding:                in.InvolvedObject,
		Related:                  in.Related,
		Note:                     in.Message,
		Type:                     in.Type,
		DeprecatedSource:         in.Source,
		DeprecatedFirstTimestamp: in.FirstTimestamp,
		DeprecatedLastTimestamp:  in.LastTimestamp,
		DeprecatedCount:          in.Count,
	}
	if in.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
}

func eventsToCore(in *eventsv1.Event, out *corev1.Event) {
	*out = corev1.Event{
		ObjectMeta:          in.ObjectMeta,
		InvolvedObject:      in.Regarding,
		Reason:              in.Reason,
		Message:             in.Note,
		Source:              in.DeprecatedSource,
		FirstTimestamp:      in.DeprecatedFirstTimestamp,
		LastTimestamp:       in.DeprecatedLastTimestamp,
		Count:               in.DeprecatedCount,
		Type:                in.Type,
		EventTime:           in.EventTime,
		Action:              in.Action,
		Related:             in.Related,
		ReportingController: in.ReportingController,
		ReportingInstance:   in.ReportingInstance,
	}
	if in.Series != nil {
		out.Series = &corev1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
}

// coreEventFields are the field selectors kube-apiserver allows on core/v1 Events (kubectl
// describe filters by involvedObject).
func coreEventFields(obj runtime.Object) fields.Set {
	e := obj.(*corev1.Event)
	return fields.Set{
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             e.ReportingController,
		"source":                         e.Source.Component,
		"type":                           e.Type,
	}
}

func eventsEventFields(obj runtime.Object) fields.Set {
	e := obj.(*eventsv1.Event)
	return fields.Set{
		"regarding.kind":      e.Regarding.Kind,
		"regarding.namespace": e.Regarding.Namespace,
		"regarding.name":      e.Regarding.Name,
		"regarding.uid":       string(e.Regarding.UID),
		"reason":              e.Reason,
		"reportingController": e.ReportingController,
		"type":                e.Type,
	}
}
