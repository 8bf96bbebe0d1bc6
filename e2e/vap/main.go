// troupe-vapcheck: evaluates the chart's ValidatingAdmissionPolicy against admission requests,
// through the upstream ValidatingAdmissionPolicy admission plugin itself (k8s.io/apiserver
// 0.36, as a kube-apiserver runs it): its policy source and informers, its matcher
// (matchConstraints, the binding's matchResources), matchConditions, variables, validations,
// messageExpressions, validationActions and failurePolicy, with Kubernetes' CEL environment.
//
// The local control plane (an apiextensions-apiserver) runs with that plugin disabled and serves
// no admissionregistration API, so this is where the policy's CEL is checked.
//
//	troupe-vapcheck -policy rendered.yaml -cases cases.yaml
//
// rendered.yaml: the chart rendered with admissionPolicy.enabled=true (any other documents are
// ignored). cases.yaml: a list of requests, each with the answer it must get (allow, or deny
// with a piece of the message). Prints one line per case; exits 1 when any case gets another
// answer, 2 when the policy or the cases cannot be loaded.
//
// Built by e2e/tools/install.sh (vapcheck) with Debian's Go sources, GOPATH style.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/initializer"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	"k8s.io/apiserver/pkg/util/compatibility"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/component-base/featuregate"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"
)

// The pod-name extra that bound service-account tokens carry.
const podNameExtra = "authentication.kubernetes.io/pod-name"

// Case is one admission request and the answer it must get.
type Case struct {
	Name string `json:"name"`
	User struct {
		Name string `json:"name"`
		// The pod a bound token was issued for; absent: a token without a pod (a legacy
		// Secret-based token, or a TokenRequest not bound to a pod).
		Pod    *string  `json:"pod,omitempty"`
		Groups []string `json:"groups,omitempty"`
	} `json:"user"`
	Operation   string                 `json:"operation"`
	Resource    string                 `json:"resource"`
	Subresource string                 `json:"subresource,omitempty"`
	Namespace   string                 `json:"namespace"`
	ObjectName  string                 `json:"objectName"`
	Object      map[string]interface{} `json:"object,omitempty"`
	OldObject   map[string]interface{} `json:"oldObject,omitempty"`
	// allow or deny.
	Expect string `json:"expect"`
	// For deny: a piece of the policy's message the answer must contain.
	Message string `json:"message,omitempty"`
}

var resources = map[string]struct {
	gvr  schema.GroupVersionResource
	kind schema.GroupVersionKind
}{
	"leases": {
		schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"},
		schema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"},
	},
	"actors": {
		schema.GroupVersionResource{Group: "troupe.dev", Version: "v1alpha1", Resource: "actors"},
		schema.GroupVersionKind{Group: "troupe.dev", Version: "v1alpha1", Kind: "Actor"},
	},
}

func main() {
	policyPath := flag.String("policy", "", "the rendered chart (YAML documents)")
	casesPath := flag.String("cases", "", "the cases (a YAML list)")
	flag.Parse()
	if *policyPath == "" || *casesPath == "" {
		fmt.Fprintln(os.Stderr, "usage: troupe-vapcheck -policy rendered.yaml -cases cases.yaml")
		os.Exit(2)
	}
	policies, bindings, schemas, err := loadPolicies(*policyPath)
	if err != nil {
		fatal(err)
	}
	if warnings := typeCheck(policies, schemas); len(warnings) > 0 {
		for _, w := range warnings {
			fmt.Fprintf(os.Stderr, "type check: %s: %s\n", w.FieldRef, w.Warning)
		}
		fatal(fmt.Errorf("the policy does not type-check against the Lease and Actor schemas (%d warnings)", len(warnings)))
	}
	cases, err := loadCases(*casesPath)
	if err != nil {
		fatal(err)
	}
	plugin, stop, err := startPlugin(policies, bindings, namespacesOf(cases))
	if err != nil {
		fatal(err)
	}
	defer stop()

	ifaces := admission.NewObjectInterfacesFromScheme(scheme.Scheme)
	failed := 0
	for _, c := range cases {
		got := plugin.Validate(context.Background(), attributes(c), ifaces)
		ok, line := judge(c, got)
		if !ok {
			failed++
		}
		fmt.Println(line)
	}
	fmt.Printf("%d cases, %d as expected, %d not\n", len(cases), len(cases)-failed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "troupe-vapcheck:", err)
	os.Exit(2)
}

func judge(c Case, got error) (bool, string) {
	switch {
	case c.Expect == "allow" && got == nil:
		return true, fmt.Sprintf("ok    allowed  %s", c.Name)
	case c.Expect == "allow":
		return false, fmt.Sprintf("WRONG denied   %s (expected allowed): %v", c.Name, got)
	case c.Expect == "deny" && got == nil:
		return false, fmt.Sprintf("WRONG allowed  %s (expected denied with %q)", c.Name, c.Message)
	case c.Expect == "deny" && !strings.Contains(got.Error(), c.Message):
		return false, fmt.Sprintf("WRONG message  %s: %v (expected %q)", c.Name, got, c.Message)
	default:
		return true, fmt.Sprintf("ok    denied   %s: %v", c.Name, got)
	}
}

func attributes(c Case) admission.Attributes {
	r := resources[c.Resource]
	extra := map[string][]string{}
	if c.User.Pod != nil {
		extra[podNameExtra] = []string{*c.User.Pod}
		extra["authentication.kubernetes.io/pod-uid"] = []string{"uid-of-" + *c.User.Pod}
	}
	who := &user.DefaultInfo{Name: c.User.Name, Groups: c.User.Groups, Extra: extra}
	obj := func(m map[string]interface{}) runtime.Object {
		if m == nil {
			return nil
		}
		return &unstructured.Unstructured{Object: m}
	}
	var options runtime.Object
	switch admission.Operation(c.Operation) {
	case admission.Create:
		options = &metav1.CreateOptions{}
	case admission.Update:
		options = &metav1.UpdateOptions{}
	case admission.Delete:
		options = &metav1.DeleteOptions{}
	}
	return admission.NewAttributesRecord(obj(c.Object), obj(c.OldObject), r.kind, c.Namespace, c.ObjectName,
		r.gvr, c.Subresource, admission.Operation(c.Operation), options, false, who)
}

// loadPolicies reads the policies and bindings of the rendered chart, and the schemas of the
// kinds they are checked against: the Actor CRD's (render with --include-crds) and a Lease's.
func loadPolicies(path string) ([]runtime.Object, []runtime.Object, schemaMap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, err
	}
	var policies, bindings []runtime.Object
	schemas := schemaMap{resources["leases"].kind: leaseSchema()}
	docs := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var raw map[string]interface{}
		if err := docs.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		doc, _ := yaml.Marshal(raw)
		switch raw["kind"] {
		case "ValidatingAdmissionPolicy":
			p := &admissionregistrationv1.ValidatingAdmissionPolicy{}
			if err := yaml.UnmarshalStrict(doc, p); err != nil {
				return nil, nil, nil, fmt.Errorf("the policy: %w", err)
			}
			defaultPolicy(p)
			policies = append(policies, p)
		case "ValidatingAdmissionPolicyBinding":
			b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
			if err := yaml.UnmarshalStrict(doc, b); err != nil {
				return nil, nil, nil, fmt.Errorf("the binding: %w", err)
			}
			defaultBinding(b)
			bindings = append(bindings, b)
		case "CustomResourceDefinition":
			if err := crdSchemas(doc, schemas); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	if len(policies) == 0 || len(bindings) == 0 {
		return nil, nil, nil, fmt.Errorf("%s holds %d policies and %d bindings: render the chart with admissionPolicy.enabled=true", path, len(policies), len(bindings))
	}
	if _, ok := schemas[resources["actors"].kind]; !ok {
		return nil, nil, nil, fmt.Errorf("%s holds no Actor CRD: render the chart with --include-crds", path)
	}
	return policies, bindings, schemas, nil
}

// schemaMap resolves the OpenAPI schema of a kind, as the API server's schema resolver does
// for the type check it reports in a policy's status.typeChecking.
type schemaMap map[schema.GroupVersionKind]*spec.Schema

func (m schemaMap) ResolveSchema(gvk schema.GroupVersionKind) (*spec.Schema, error) {
	if s, ok := m[gvk]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("%v: %w", gvk, resolver.ErrSchemaNotFound)
}

func crdSchemas(doc []byte, into schemaMap) error {
	var crd struct {
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema *spec.Schema `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(doc, &crd); err != nil {
		return fmt.Errorf("a CRD: %w", err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Schema.OpenAPIV3Schema != nil {
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
			into[gvk] = v.Schema.OpenAPIV3Schema
		}
	}
	return nil
}

// The parts of coordination.k8s.io/v1 Lease a policy can name (k8s.io/api's OpenAPI
// definitions are generated in k8s.io/kubernetes, which Debian does not package).
func leaseSchema() *spec.Schema {
	s := &spec.Schema{}
	if err := s.UnmarshalJSON([]byte(`{
	  "type": "object",
	  "properties": {
	    "apiVersion": {"type": "string"},
	    "kind": {"type": "string"},
	    "metadata": {"type": "object"},
	    "spec": {"type": "object", "properties": {
	      "holderIdentity": {"type": "string"},
	      "leaseDurationSeconds": {"type": "integer", "format": "int32"},
	      "acquireTime": {"type": "string", "format": "date-time"},
	      "renewTime": {"type": "string", "format": "date-time"},
	      "leaseTransitions": {"type": "integer", "format": "int32"},
	      "strategy": {"type": "string"},
	      "preferredHolder": {"type": "string"}
	    }}
	  }
	}`)); err != nil {
		panic(err)
	}
	return s
}

// typeCheck runs the API server's own type check of each policy (what it reports in
// status.typeChecking) against the schemas: a misspelt field is a warning there, and an error here.
func typeCheck(policies []runtime.Object, schemas schemaMap) []admissionregistrationv1.ExpressionWarning {
	checker := validating.TypeChecker{SchemaResolver: schemas, RestMapper: restMapper()}
	var out []admissionregistrationv1.ExpressionWarning
	for _, p := range policies {
		out = append(out, checker.Check(p.(*admissionregistrationv1.ValidatingAdmissionPolicy))...)
	}
	return out
}

func restMapper() meta.RESTMapper {
	mapper := meta.NewDefaultRESTMapper(nil)
	for _, r := range resources {
		singular := r.gvr.GroupVersion().WithResource(strings.ToLower(r.kind.Kind))
		mapper.AddSpecific(r.kind, r.gvr, singular, meta.RESTScopeNamespace)
	}
	mapper.Add(corev1.SchemeGroupVersion.WithKind("Namespace"), meta.RESTScopeRoot)
	return mapper
}

// The API server's defaults for what the manifest leaves out (k8s.io/kubernetes
// pkg/apis/admissionregistration/v1/defaults.go, which Debian does not package).
func defaultMatchResources(m *admissionregistrationv1.MatchResources) {
	if m.MatchPolicy == nil {
		p := admissionregistrationv1.Equivalent
		m.MatchPolicy = &p
	}
	if m.NamespaceSelector == nil {
		m.NamespaceSelector = &metav1.LabelSelector{}
	}
	if m.ObjectSelector == nil {
		m.ObjectSelector = &metav1.LabelSelector{}
	}
	for _, rules := range [][]admissionregistrationv1.NamedRuleWithOperations{m.ResourceRules, m.ExcludeResourceRules} {
		for i := range rules {
			if rules[i].Scope == nil {
				s := admissionregistrationv1.AllScopes
				rules[i].Scope = &s
			}
		}
	}
}

func defaultPolicy(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
	if p.Spec.FailurePolicy == nil {
		f := admissionregistrationv1.Fail
		p.Spec.FailurePolicy = &f
	}
	if p.Spec.MatchConstraints != nil {
		defaultMatchResources(p.Spec.MatchConstraints)
	}
	p.ResourceVersion = "1"
}

func defaultBinding(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	if b.Spec.MatchResources != nil {
		defaultMatchResources(b.Spec.MatchResources)
	}
	b.ResourceVersion = "1"
}

func loadCases(path string) ([]Case, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cases []Case
	if err := yaml.UnmarshalStrict(data, &cases); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range cases {
		if _, ok := resources[c.Resource]; !ok {
			return nil, fmt.Errorf("case %q: resource %q is not one of leases, actors", c.Name, c.Resource)
		}
		if c.Expect != "allow" && (c.Expect != "deny" || c.Message == "") {
			return nil, fmt.Errorf("case %q: expect must be allow, or deny with a message", c.Name)
		}
	}
	return cases, nil
}

func namespacesOf(cases []Case) []runtime.Object {
	seen := map[string]bool{}
	var out []runtime.Object
	for _, c := range cases {
		if c.Namespace != "" && !seen[c.Namespace] {
			seen[c.Namespace] = true
			out = append(out, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.Namespace}})
		}
	}
	return out
}

// startPlugin builds the upstream plugin as the API server's admission chain does (the generic
// initializer), over fake clients that hold the policy, its binding and the namespaces, and waits
// until its policy source has compiled them.
func startPlugin(policies, bindings, namespaces []runtime.Object) (*validating.Plugin, func(), error) {
	objects := append(append(append([]runtime.Object{}, policies...), bindings...), namespaces...)
	client := fake.NewSimpleClientset(objects...)
	dynamic := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	factory := informers.NewSharedInformerFactory(client, 0)

	mapper := restMapper()
	plugin, err := validating.NewPlugin(nil)
	if err != nil {
		return nil, nil, err
	}
	stop := make(chan struct{})
	allowAll := authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionAllow, "", nil
	})
	initializer.New(client, dynamic, factory, allowAll, featuregate.NewFeatureGate(),
		compatibility.DefaultBuildEffectiveVersion(), stop, mapper).Initialize(plugin)
	if err := plugin.ValidateInitialization(); err != nil {
		close(stop)
		return nil, nil, err
	}
	factory.Start(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, synced := range factory.WaitForCacheSync(ctx.Done()) {
		if !synced {
			close(stop)
			return nil, nil, errors.New("the plugin's informers did not sync")
		}
	}
	// Ready once the namespace informer has synced and the policy source has compiled every
	// policy and binding the informers delivered (a compile error is not fatal here: the
	// policy then answers by its failurePolicy, and the cases report it).
	if !plugin.WaitForReady() {
		close(stop)
		return nil, nil, errors.New("the plugin did not become ready")
	}
	return plugin, func() { close(stop) }, nil
}
