package coreapi

import (
	"fmt"
	"strings"

	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// rbacKinds are rbac.authorization.k8s.io/v1's four kinds, stored and validated; the server's
// authorizer reads them (through informers) to judge every user but system:masters (auth.go).
var rbacKinds = []*kind{
	{group: rbacv1.GroupName, resource: "roles", singular: "role", kind: "Role", namespaced: true,
		name: path.ValidatePathSegmentName,
		new:  func() runtime.Object { return &rbacv1.Role{} }, newList: func() runtime.Object { return &rbacv1.RoleList{} },
		validate: func(obj, _ runtime.Object) field.ErrorList {
			return validateRules(obj.(*rbacv1.Role).Rules, true)
		},
	},
	{group: rbacv1.GroupName, resource: "clusterroles", singular: "clusterrole", kind: "ClusterRole",
		name: path.ValidatePathSegmentName,
		new:  func() runtime.Object { return &rbacv1.ClusterRole{} }, newList: func() runtime.Object { return &rbacv1.ClusterRoleList{} },
		validate: func(obj, _ runtime.Object) field.ErrorList {
			r := obj.(*rbacv1.ClusterRole)
			errs := validateRules(r.Rules, false)
			if a := r.AggregationRule; a != nil {
				if len(a.ClusterRoleSelectors) == 0 {
					errs = append(errs, field.Required(field.NewPath("aggregationRule", "clusterRoleSelectors"), "at least one clusterRoleSelector required if aggregationRule is non-nil"))
				}
				for i := range a.ClusterRoleSelectors {
					errs = append(errs, metav1validation.ValidateLabelSelector(&a.ClusterRoleSelectors[i], metav1validation.LabelSelectorValidationOptions{},
						field.NewPath("aggregationRule", "clusterRoleSelectors").Index(i))...)
				}
			}
			return errs
		},
	},
	{group: rbacv1.GroupName, resource: "rolebindings", singular: "rolebinding", kind: "RoleBinding", namespaced: true,
		name: path.ValidatePathSegmentName,
		new:  func() runtime.Object { return &rbacv1.RoleBinding{} }, newList: func() runtime.Object { return &rbacv1.RoleBindingList{} },
		prepare: func(obj, _ runtime.Object) { defaultSubjects(obj.(*rbacv1.RoleBinding).Subjects) },
		validate: func(obj, old runtime.Object) field.ErrorList {
			b := obj.(*rbacv1.RoleBinding)
			var prev *rbacv1.RoleRef
			if o, ok := old.(*rbacv1.RoleBinding); ok {
				prev = &o.RoleRef
			}
			return validateBinding(b.RoleRef, prev, b.Subjects, []string{"Role", "ClusterRole"})
		},
		columns: []column{{"Role", func(o runtime.Object) interface{} {
			r := o.(*rbacv1.RoleBinding).RoleRef
			return r.Kind + "/" + r.Name
		}}},
	},
	{group: rbacv1.GroupName, resource: "clusterrolebindings", singular: "clusterrolebinding", kind: "ClusterRoleBinding",
		name: path.ValidatePathSegmentName,
		new:  func() runtime.Object { return &rbacv1.ClusterRoleBinding{} }, newList: func() runtime.Object { return &rbacv1.ClusterRoleBindingList{} },
		prepare: func(obj, _ runtime.Object) { defaultSubjects(obj.(*rbacv1.ClusterRoleBinding).Subjects) },
		validate: func(obj, old runtime.Object) field.ErrorList {
			b := obj.(*rbacv1.ClusterRoleBinding)
			var prev *rbacv1.RoleRef
			if o, ok := old.(*rbacv1.ClusterRoleBinding); ok {
				prev = &o.RoleRef
			}
			return validateBinding(b.RoleRef, prev, b.Subjects, []string{"ClusterRole"})
		},
		columns: []column{{"Role", func(o runtime.Object) interface{} {
			r := o.(*rbacv1.ClusterRoleBinding).RoleRef
			return r.Kind + "/" + r.Name
		}}},
	},
}

// policyKinds are policy/v1 PodDisruptionBudgets: stored, with a status nothing computes (no
// disruption controller, no evictions).
var policyKinds = []*kind{
	{group: policyv1.GroupName, resource: "poddisruptionbudgets", singular: "poddisruptionbudget", kind: "PodDisruptionBudget",
		shortNames: []string{"pdb"}, namespaced: true, status: true,
		name: apivalidation.NameIsDNSSubdomain,
		new:  func() runtime.Object { return &policyv1.PodDisruptionBudget{} }, newList: func() runtime.Object { return &policyv1.PodDisruptionBudgetList{} },
		validate: validatePDB,
		columns: []column{
			{"Min Available", func(o runtime.Object) interface{} {
				return intOrNA(o.(*policyv1.PodDisruptionBudget).Spec.MinAvailable)
			}},
			{"Max Unavailable", func(o runtime.Object) interface{} {
				return intOrNA(o.(*policyv1.PodDisruptionBudget).Spec.MaxUnavailable)
			}},
			{"Allowed Disruptions", func(o runtime.Object) interface{} {
				return fmt.Sprint(o.(*policyv1.PodDisruptionBudget).Status.DisruptionsAllowed)
			}},
		},
	},
}

func intOrNA(v *intstr.IntOrString) string {
	if v == nil {
		return "N/A"
	}
	return v.String()
}

// validateRules checks what kube-apiserver checks of a policy rule: verbs, and in a Role
// resources (non-resource URLs belong to ClusterRoles).
func validateRules(rules []rbacv1.PolicyRule, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	for i, r := range rules {
		p := field.NewPath("rules").Index(i)
		if len(r.Verbs) == 0 {
			errs = append(errs, field.Required(p.Child("verbs"), "verbs must contain at least one value"))
		}
		if len(r.NonResourceURLs) > 0 {
			if namespaced {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), r.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
			}
			if len(r.APIGroups) > 0 || len(r.Resources) > 0 || len(r.ResourceNames) > 0 {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), r.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
			}
			continue
		}
		if len(r.APIGroups) == 0 {
			errs = append(errs, field.Required(p.Child("apiGroups"), "resource rules must supply at least one api group"))
		}
		if len(r.Resources) == 0 {
			errs = append(errs, field.Required(p.Child("resources"), "resource rules must supply at least one resource"))
		}
	}
	return errs
}

// defaultSubjects gives User and Group subjects the RBAC group, as the v1 defaulting does.
func defaultSubjects(subjects []rbacv1.Subject) {
	for i := range subjects {
		s := &subjects[i]
		if s.APIGroup == "" && (s.Kind == rbacv1.UserKind || s.Kind == rbacv1.GroupKind) {
			s.APIGroup = rbacv1.GroupName
		}
	}
}

// validateBinding checks a binding's roleRef (immutable once set) and subjects, with
// kube-apiserver's messages.
func validateBinding(ref rbacv1.RoleRef, old *rbacv1.RoleRef, subjects []rbacv1.Subject, kinds []string) field.ErrorList {
	var errs field.ErrorList
	rp := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(rp.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	known := false
	for _, k := range kinds {
		known = known || ref.Kind == k
	}
	if !known {
		errs = append(errs, field.NotSupported(rp.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(rp.Child("name"), ""))
	} else {
		for _, msg := range path.ValidatePathSegmentName(ref.Name, false) {
			errs = append(errs, field.Invalid(rp.Child("name"), ref.Name, msg))
		}
	}
	if old != nil && *old != ref {
		errs = append(errs, field.Invalid(rp, ref, "cannot change roleRef"))
	}
	for i, s := range subjects {
		p := field.NewPath("subjects").Index(i)
		if s.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if s.Name != "" {
				for _, msg := range validation.IsDNS1123Subdomain(s.Name) {
					errs = append(errs, field.Invalid(p.Child("name"), s.Name, msg))
				}
			}
			if s.APIGroup != "" {
				errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{""}))
			}
		case rbacv1.UserKind, rbacv1.GroupKind:
			if s.APIGroup != rbacv1.GroupName {
				errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
		}
	}
	return errs
}

// validatePDB checks a PodDisruptionBudget as kube-apiserver does: not both minAvailable and
// maxUnavailable, each a non-negative number or a percentage (at most 100%), a valid selector
// and eviction policy.
func validatePDB(obj, _ runtime.Object) field.ErrorList {
	spec := obj.(*policyv1.PodDisruptionBudget).Spec
	sp := field.NewPath("spec")
	var errs field.ErrorList
	if spec.MinAvailable != nil && spec.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(sp, spec, "minAvailable and maxUnavailable cannot be both set"))
	}
	for _, f := range []struct {
		name string
		v    *intstr.IntOrString
	}{{"minAvailable", spec.MinAvailable}, {"maxUnavailable", spec.MaxUnavailable}} {
		v := f.v
		if v == nil {
			continue
		}
		p := sp.Child(f.name)
		if v.Type == intstr.Int {
			if v.IntVal < 0 {
				errs = append(errs, field.Invalid(p, v.IntVal, "must be greater than or equal to 0"))
			}
			continue
		}
		pct, ok := strings.CutSuffix(v.StrVal, "%")
		var n int
		if _, err := fmt.Sscanf(pct, "%d", &n); !ok || err != nil || fmt.Sprint(n) != pct {
			errs = append(errs, field.Invalid(p, v.StrVal, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"))
		} else if n < 0 || n > 100 {
			errs = append(errs, field.Invalid(p, v.StrVal, "must not be greater than 100%"))
		}
	}
	errs = append(errs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, sp.Child("selector"))...)
	if p := spec.UnhealthyPodEvictionPolicy; p != nil && *p != policyv1.IfHealthyBudget && *p != policyv1.AlwaysAllow {
		errs = append(errs, field.NotSupported(sp.Child("unhealthyPodEvictionPolicy"), *p, []string{string(policyv1.IfHealthyBudget), string(policyv1.AlwaysAllow)}))
	}
	return errs
}
