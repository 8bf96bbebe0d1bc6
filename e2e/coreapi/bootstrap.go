package coreapi

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
)

// The part of kube's bootstrap RBAC policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy)
// that every authenticated user relies on, and cluster-admin, which charts bind to. kube-apiserver
// stores these objects at start-up; here they are built in and used when no stored ClusterRole of
// that name exists (a stored one wins, as on kube where the stored one is the only one).
var bootstrapRoles = map[string][]rbacv1.PolicyRule{
	"cluster-admin": {
		{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
		{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}},
	},
	// Enough to know the server is up and to discover its APIs.
	"system:discovery": {
		{Verbs: []string{"get"}, NonResourceURLs: []string{
			"/livez", "/readyz", "/healthz", "/version", "/version/",
			"/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*",
		}},
	},
	// Enough for a user to learn about themselves (these review APIs are not served here).
	"system:basic-user": {
		{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}},
		{Verbs: []string{"create"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}},
	},
	"system:public-info-viewer": {
		{Verbs: []string{"get"}, NonResourceURLs: []string{"/livez", "/readyz", "/healthz", "/version", "/version/"}},
	},
}

// bootstrapBindings give the three roles above to every authenticated user, as kube's do. kube
// also binds system:public-info-viewer to system:unauthenticated; here anonymous requests keep
// what they had before RBAC was enforced (/healthz, /readyz and /livez only), unless a stored
// binding grants them more.
var bootstrapBindings = []*rbacv1.ClusterRoleBinding{
	authenticatedBinding("system:discovery"),
	authenticatedBinding("system:basic-user"),
	authenticatedBinding("system:public-info-viewer"),
}

func authenticatedBinding(role string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: user.AllAuthenticated}},
	}
}
