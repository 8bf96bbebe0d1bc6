package coreapi

import (
	"fmt"
	"hash/fnv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxDataSize is kube-apiserver's limit on a Secret's or a ConfigMap's data (1 MiB).
const maxDataSize = 1024 * 1024

// kind is one served resource: its names, its objects, and what the server does on writes.
// Defaulting is here because k8s.io/api has no defaulters (they live in k8s.io/kubernetes).
type kind struct {
	group, resource, singular, kind string
	shortNames                      []string
	namespaced, status              bool
	name                            apivalidation.ValidateNameFunc
	new, newList                    func() runtime.Object
	// prepare defaults obj on create (old is nil) and on update.
	prepare func(obj, old runtime.Object)
	// validate checks the object (old is nil on create) beyond its metadata.
	validate func(obj, old runtime.Object) field.ErrorList
	// fields are the field selectors beyond metadata.name and metadata.namespace.
	fields  func(obj runtime.Object) fields.Set
	columns []column
	// wide are the columns kubectl shows only with -o wide (priority 1), after AGE.
	wide []column
	// gracefulDelete, when set, makes deletes graceful as rest.RESTGracefulDeleteStrategy
	// does: it sets options.GracePeriodSeconds and says whether the delete is graceful.
	gracefulDelete func(obj runtime.Object, options *metav1.DeleteOptions) bool
}

var kinds = append(append(coreKinds, rbacKinds...), policyKinds...)

var coreKinds = []*kind{
	{resource: "namespaces", singular: "namespace", kind: "Namespace", shortNames: []string{"ns"}, status: true,
		name: apivalidation.NameIsDNSLabel,
		new:  func() runtime.Object { return &corev1.Namespace{} }, newList: func() runtime.Object { return &corev1.NamespaceList{} },
		prepare: func(obj, old runtime.Object) {
			ns := obj.(*corev1.Namespace)
			// No namespace controller runs here: the "kubernetes" finalizer would never be removed.
			ns.Spec.Finalizers = nil
			if ns.Status.Phase == "" {
				ns.Status.Phase = corev1.NamespaceActive
			}
			if ns.Labels == nil {
				ns.Labels = map[string]string{}
			}
			ns.Labels[corev1.LabelMetadataName] = ns.Name
		},
		fields: func(obj runtime.Object) fields.Set {
			return fields.Set{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
		},
		columns: []column{{"Status", func(o runtime.Object) interface{} { return string(o.(*corev1.Namespace).Status.Phase) }}},
	},
	{resource: "serviceaccounts", singular: "serviceaccount", kind: "ServiceAccount", shortNames: []string{"sa"}, namespaced: true,
		name: apivalidation.NameIsDNSSubdomain,
		new:  func() runtime.Object { return &corev1.ServiceAccount{} }, newList: func() runtime.Object { return &corev1.ServiceAccountList{} },
		columns: []column{{"Secrets", func(o runtime.Object) interface{} { return int64(len(o.(*corev1.ServiceAccount).Secrets)) }}},
	},
	{resource: "secrets", singular: "secret", kind: "Secret", namespaced: true,
		name: apivalidation.NameIsDNSSubdomain,
		new:  func() runtime.Object { return &corev1.Secret{} }, newList: func() runtime.Object { return &corev1.SecretList{} },
		prepare: func(obj, _ runtime.Object) {
			s := obj.(*corev1.Secret)
			if s.Type == "" {
				s.Type = corev1.SecretTypeOpaque
			}
			// stringData is write-only: it is merged into data, as the v1 conversion does.
			for k, v := range s.StringData {
				if s.Data == nil {
					s.Data = map[string][]byte{}
				}
				s.Data[k] = []byte(v)
			}
			s.StringData = nil
		},
		validate: func(obj, old runtime.Object) field.ErrorList {
			s := obj.(*corev1.Secret)
			errs := validateData(s.Data, nil, field.NewPath("data"))
			switch s.Type {
			case corev1.SecretTypeTLS:
				for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
					if _, ok := s.Data[k]; !ok {
						errs = append(errs, field.Required(field.NewPath("data").Key(k), ""))
					}
				}
			case corev1.SecretTypeDockerConfigJson:
				if _, ok := s.Data[corev1.DockerConfigJsonKey]; !ok {
					errs = append(errs, field.Required(field.NewPath("data").Key(corev1.DockerConfigJsonKey), ""))
				}
			}
			if old, ok := old.(*corev1.Secret); ok {
				if s.Type != old.Type {
					errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, "field is immutable"))
				}
				errs = append(errs, validateImmutable(old.Immutable, s.Immutable, fmt.Sprint(old.Data) == fmt.Sprint(s.Data))...)
			}
			return errs
		},
		fields:  func(obj runtime.Object) fields.Set { return fields.Set{"type": string(obj.(*corev1.Secret).Type)} },
		columns: []column{{"Type", func(o runtime.Object) interface{} { return string(o.(*corev1.Secret).Type) }}, {"Data", func(o runtime.Object) interface{} { return int64(len(o.(*corev1.Secret).Data)) }}},
	},
	{resource: "configmaps", singular: "configmap", kind: "ConfigMap", shortNames: []string{"cm"}, namespaced: true,
		name: apivalidation.NameIsDNSSubdomain,
		new:  func() runtime.Object { return &corev1.ConfigMap{} }, newList: func() runtime.Object { return &corev1.ConfigMapList{} },
		validate: func(obj, old runtime.Object) field.ErrorList {
			c := obj.(*corev1.ConfigMap)
			strs := map[string][]byte{}
			for k, v := range c.Data {
				strs[k] = []byte(v)
			}
			errs := validateData(strs, c.BinaryData, field.NewPath("data"))
			if old, ok := old.(*corev1.ConfigMap); ok {
				same := fmt.Sprint(old.Data) == fmt.Sprint(c.Data) && fmt.Sprint(old.BinaryData) == fmt.Sprint(c.BinaryData)
				errs = append(errs, validateImmutable(old.Immutable, c.Immutable, same)...)
			}
			return errs
		},
		columns: []column{{"Data", func(o runtime.Object) interface{} {
			c := o.(*corev1.ConfigMap)
			return int64(len(c.Data) + len(c.BinaryData))
		}}},
	},
	{resource: "services", singular: "service", kind: "Service", shortNames: []string{"svc"}, namespaced: true, status: true,
		name: apivalidation.NameIsDNS1035Label,
		new:  func() runtime.Object { return &corev1.Service{} }, newList: func() runtime.Object { return &corev1.ServiceList{} },
		prepare:  prepareService,
		validate: validateService,
		columns: []column{
			{"Type", func(o runtime.Object) interface{} { return string(o.(*corev1.Service).Spec.Type) }},
			{"Cluster-IP", func(o runtime.Object) interface{} { return o.(*corev1.Service).Spec.ClusterIP }},
			{"Ports", func(o runtime.Object) interface{} {
				var ps []string
				for _, p := range o.(*corev1.Service).Spec.Ports {
					ps = append(ps, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
				}
				if len(ps) == 0 {
					return "<none>"
				}
				return strings.Join(ps, ",")
			}},
		},
	},
	{resource: "pods", singular: "pod", kind: "Pod", shortNames: []string{"po"}, namespaced: true, status: true,
		name: apivalidation.NameIsDNSSubdomain,
		new:  func() runtime.Object { return &corev1.Pod{} }, newList: func() runtime.Object { return &corev1.PodList{} },
		prepare: func(obj, old runtime.Object) {
			p := obj.(*corev1.Pod)
			if p.Spec.RestartPolicy == "" {
				p.Spec.RestartPolicy = corev1.RestartPolicyAlways
			}
			if p.Spec.DNSPolicy == "" {
				p.Spec.DNSPolicy = corev1.DNSClusterFirst
			}
			if p.Spec.SchedulerName == "" {
				p.Spec.SchedulerName = corev1.DefaultSchedulerName
			}
			if p.Spec.TerminationGracePeriodSeconds == nil {
				grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
				p.Spec.TerminationGracePeriodSeconds = &grace
			}
			if old == nil && p.Status.Phase == "" {
				p.Status.Phase = corev1.PodPending
			}
		},
		validate: func(obj, _ runtime.Object) field.ErrorList {
			p := obj.(*corev1.Pod)
			path := field.NewPath("spec", "containers")
			if len(p.Spec.Containers) == 0 {
				return field.ErrorList{field.Required(path, "")}
			}
			var errs field.ErrorList
			seen := sets.New[string]()
			for i, c := range p.Spec.Containers {
				for _, msg := range validation.IsDNS1123Label(c.Name) {
					errs = append(errs, field.Invalid(path.Index(i).Child("name"), c.Name, msg))
				}
				if seen.Has(c.Name) {
					errs = append(errs, field.Duplicate(path.Index(i).Child("name"), c.Name))
				}
				seen.Insert(c.Name)
				if c.Image == "" {
					errs = append(errs, field.Required(path.Index(i).Child("image"), ""))
				}
			}
			return errs
		},
		fields: func(obj runtime.Object) fields.Set {
			p := obj.(*corev1.Pod)
			return fields.Set{"spec.nodeName": p.Spec.NodeName, "status.phase": string(p.Status.Phase), "spec.serviceAccountName": p.Spec.ServiceAccountName}
		},
		columns:        podColumns,
		wide:           podWideColumns,
		gracefulDelete: podGracefulDelete,
	},
	{resource: "events", singular: "event", kind: "Event", shortNames: []string{"ev"}, namespaced: true,
		name: apivalidation.NameIsDNSSubdomain,
		new:  func() runtime.Object { return &corev1.Event{} }, newList: func() runtime.Object { return &corev1.EventList{} },
		validate: func(obj, _ runtime.Object) field.ErrorList {
			e := obj.(*corev1.Event)
			if e.InvolvedObject.Namespace != "" && e.InvolvedObject.Namespace != e.Namespace {
				return field.ErrorList{field.Invalid(field.NewPath("involvedObject", "namespace"), e.InvolvedObject.Namespace, "does not match event.namespace")}
			}
			return nil
		},
		fields:  coreEventFields,
		columns: eventColumns(func(o runtime.Object) *corev1.Event { return o.(*corev1.Event) }),
	},
	{group: eventsv1.GroupName, resource: "events", singular: "event", kind: "Event", shortNames: []string{"ev"}, namespaced: true,
		name: apivalidation.NameIsDNSSubdomain,
		new:  func() runtime.Object { return &eventsv1.Event{} }, newList: func() runtime.Object { return &eventsv1.EventList{} },
		validate: func(obj, _ runtime.Object) field.ErrorList {
			e := obj.(*eventsv1.Event)
			var errs field.ErrorList
			if e.EventTime.IsZero() {
				errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
			}
			if e.ReportingController == "" {
				errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
			}
			if e.Regarding.Namespace != "" && e.Regarding.Namespace != e.Namespace {
				errs = append(errs, field.Invalid(field.NewPath("regarding", "namespace"), e.Regarding.Namespace, "does not match event.namespace"))
			}
			return errs
		},
		fields: eventsEventFields,
		columns: eventColumns(func(o runtime.Object) *corev1.Event {
			var e corev1.Event
			eventsToCore(o.(*eventsv1.Event), &e)
			return &e
		}),
	},
}

// eventColumns are kubectl get events' columns (before AGE... as kube-apiserver prints them).
func eventColumns(core func(runtime.Object) *corev1.Event) []column {
	return []column{
		{"Last Seen", func(o runtime.Object) interface{} {
			e := core(o)
			t := e.LastTimestamp.Time
			if e.Series != nil {
				t = e.Series.LastObservedTime.Time
			} else if t.IsZero() {
				t = e.EventTime.Time
			}
			return translateAge(t)
		}},
		{"Type", func(o runtime.Object) interface{} { return core(o).Type }},
		{"Reason", func(o runtime.Object) interface{} { return core(o).Reason }},
		{"Object", func(o runtime.Object) interface{} {
			e := core(o)
			return strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
		}},
		{"Message", func(o runtime.Object) interface{} { return strings.TrimSpace(core(o).Message) }},
	}
}

func validateData(data map[string][]byte, binary map[string][]byte, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	size := 0
	for k, v := range data {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(path.Key(k), k, msg))
		}
		size += len(v)
	}
	for k, v := range binary {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, msg))
		}
		if _, ok := data[k]; ok {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of key present in data"))
		}
		size += len(v)
	}
	if size > maxDataSize {
		errs = append(errs, field.TooLong(path, "", maxDataSize))
	}
	return errs
}

func validateImmutable(wasImmutable, isImmutable *bool, sameData bool) field.ErrorList {
	if wasImmutable == nil || !*wasImmutable {
		return nil
	}
	var errs field.ErrorList
	if isImmutable == nil || !*isImmutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
	}
	if !sameData {
		errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
	}
	return errs
}

func prepareService(obj, old runtime.Object) {
	s := obj.(*corev1.Service)
	if s.Spec.Type == "" {
		s.Spec.Type = corev1.ServiceTypeClusterIP
	}
	if s.Spec.SessionAffinity == "" {
		s.Spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	for i := range s.Spec.Ports {
		p := &s.Spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == (intstr.IntOrString{}) {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		return
	}
	if prev, ok := old.(*corev1.Service); ok && s.Spec.ClusterIP == "" {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = prev.Spec.ClusterIP, prev.Spec.ClusterIPs
	}
	if s.Spec.ClusterIP == "" {
		// Not an allocator: an address from the service's name in 10.96.0.0/16 that nothing routes.
		h := fnv.New32a()
		h.Write([]byte(s.Namespace + "/" + s.Name))
		v := h.Sum32()
		s.Spec.ClusterIP = fmt.Sprintf("10.96.%d.%d", (v>>8)%256, 2+v%253)
	}
	if len(s.Spec.ClusterIPs) == 0 {
		s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
	}
	if s.Spec.ClusterIP != corev1.ClusterIPNone || len(s.Spec.IPFamilies) == 0 {
		if len(s.Spec.IPFamilies) == 0 {
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
	}
	if s.Spec.IPFamilyPolicy == nil {
		single := corev1.IPFamilyPolicySingleStack
		s.Spec.IPFamilyPolicy = &single
	}
	if s.Spec.InternalTrafficPolicy == nil {
		cluster := corev1.ServiceInternalTrafficPolicyCluster
		s.Spec.InternalTrafficPolicy = &cluster
	}
}

func validateService(obj, old runtime.Object) field.ErrorList {
	s := obj.(*corev1.Service)
	var errs field.ErrorList
	spec := field.NewPath("spec")
	switch s.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName:
	default:
		errs = append(errs, field.NotSupported(spec.Child("type"), s.Spec.Type, []string{"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}))
	}
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		for _, msg := range validation.IsDNS1123Subdomain(s.Spec.ExternalName) {
			errs = append(errs, field.Invalid(spec.Child("externalName"), s.Spec.ExternalName, msg))
		}
	} else if len(s.Spec.Ports) == 0 && s.Spec.ClusterIP != corev1.ClusterIPNone {
		errs = append(errs, field.Required(spec.Child("ports"), ""))
	}
	names := sets.New[string]()
	for i, p := range s.Spec.Ports {
		path := spec.Child("ports").Index(i)
		if len(s.Spec.Ports) > 1 && p.Name == "" {
			errs = append(errs, field.Required(path.Child("name"), "must be specified when there is more than one port"))
		}
		if p.Name != "" {
			for _, msg := range validation.IsDNS1123Label(p.Name) {
				errs = append(errs, field.Invalid(path.Child("name"), p.Name, msg))
			}
			if names.Has(p.Name) {
				errs = append(errs, field.Duplicate(path.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		for _, msg := range validation.IsValidPortNum(int(p.Port)) {
			errs = append(errs, field.Invalid(path.Child("port"), p.Port, msg))
		}
		switch p.Protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			errs = append(errs, field.NotSupported(path.Child("protocol"), p.Protocol, []string{"TCP", "UDP", "SCTP"}))
		}
		if p.TargetPort.Type == intstr.Int {
			for _, msg := range validation.IsValidPortNum(p.TargetPort.IntValue()) {
				errs = append(errs, field.Invalid(path.Child("targetPort"), p.TargetPort.IntValue(), msg))
			}
		} else {
			for _, msg := range validation.IsValidPortName(p.TargetPort.StrVal) {
				errs = append(errs, field.Invalid(path.Child("targetPort"), p.TargetPort.StrVal, msg))
			}
		}
	}
	for k, v := range s.Spec.Selector {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(spec.Child("selector").Key(k), k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(spec.Child("selector").Key(k), v, msg))
		}
	}
	if prev, ok := old.(*corev1.Service); ok && prev.Spec.ClusterIP != "" && s.Spec.ClusterIP != prev.Spec.ClusterIP &&
		s.Spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Invalid(spec.Child("clusterIP"), s.Spec.ClusterIP, "field is immutable"))
	}
	return errs
}
