package coreapi

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/authorization/path"
	"k8s.io/apiserver/pkg/authorization/union"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Auth is who may call the server and what they may do, as kube-apiserver decides it:
// client certificates and service-account tokens (Tokens, nil without a signing key), then
// system:masters allowed everything and everyone else judged by RBAC from the stored
// rbac.authorization.k8s.io/v1 objects. The objects (and ServiceAccounts, for tokens) are read
// through shared informers on the server's loopback client, started after the server is up.
type Auth struct {
	Tokens *Tokens

	factory  informers.SharedInformerFactory
	resolver *ruleResolver
	synced   []cache.InformerSynced
	accounts corelisters.ServiceAccountLister
	// accountStore is the ServiceAccounts' storage, for those not in the informer's cache yet;
	// set by New.
	accountStore rest.Getter
}

// NewAuth prepares the informers on the loopback client; they start with the core server.
func NewAuth(loopback *restclient.Config, tokens *Tokens) (*Auth, error) {
	client, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		return nil, fmt.Errorf("loopback client for the RBAC informers: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	rbac := factory.Rbac().V1()
	a := &Auth{
		Tokens:  tokens,
		factory: factory,
		resolver: &ruleResolver{
			roles:               rbac.Roles().Lister(),
			roleBindings:        rbac.RoleBindings().Lister(),
			clusterRoles:        rbac.ClusterRoles().Lister(),
			clusterRoleBindings: rbac.ClusterRoleBindings().Lister(),
		},
		accounts: factory.Core().V1().ServiceAccounts().Lister(),
	}
	// Listers register their informers with the factory; these are what RBAC waits for.
	for _, i := range []cache.SharedIndexInformer{
		rbac.Roles().Informer(), rbac.RoleBindings().Informer(),
		rbac.ClusterRoles().Informer(), rbac.ClusterRoleBindings().Informer(),
	} {
		a.synced = append(a.synced, i.HasSynced)
	}
	return a, nil
}

// start runs the informers until ctx ends (the core server's post-start hook).
func (a *Auth) start(ctx context.Context) {
	a.factory.Start(ctx.Done())
}

// Authenticator: see Authenticator.
func (a *Auth) Authenticator(clientCA dynamiccertificates.CAContentProvider) authenticator.Request {
	return Authenticator(clientCA, a.Tokens, a.account)
}

// APIAudiences are the audiences the server's tokens are for (none without tokens).
func (a *Auth) APIAudiences() authenticator.Audiences {
	if a.Tokens == nil {
		return nil
	}
	return a.Tokens.APIAudiences
}

// Authorizer is kube-apiserver's order: the privileged groups (system:masters) first, the paths
// every caller may get (the delegating authorizer's /healthz, /readyz, /livez, kept as they
// were), then RBAC. A request nobody allows is forbidden (403) with kube's message.
func (a *Auth) Authorizer(alwaysAllowGroups, alwaysAllowPaths []string) (authorizer.Authorizer, error) {
	var chain []authorizer.Authorizer
	if len(alwaysAllowGroups) > 0 {
		chain = append(chain, authorizerfactory.NewPrivilegedGroups(alwaysAllowGroups...))
	}
	if len(alwaysAllowPaths) > 0 {
		p, err := path.NewAuthorizer(alwaysAllowPaths)
		if err != nil {
			return nil, err
		}
		chain = append(chain, p)
	}
	chain = append(chain, &rbacAuthorizer{a})
	return union.New(chain...), nil
}

// account finds a ServiceAccount for the token authenticator: the informer's cache, or the
// store for one created since (kube-apiserver's getter falls back to a live read the same way).
func (a *Auth) account(_ context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	sa, err := a.accounts.ServiceAccounts(namespace).Get(name)
	if err == nil || !apierrors.IsNotFound(err) || a.accountStore == nil {
		return sa, err
	}
	// A context of its own: the request's would make the store name the request's resource in
	// its errors.
	obj, err := a.accountStore.Get(genericapirequest.WithNamespace(genericapirequest.NewContext(), namespace), name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.ServiceAccount), nil
}

// rbacAuthorizer is kube's RBACAuthorizer (plugin/pkg/auth/authorizer/rbac/rbac.go): allowed by
// the first rule that matches; otherwise no opinion, with the resolution errors as the reason.
type rbacAuthorizer struct{ auth *Auth }

// notSynced is the reason non-masters are refused until the informers have listed everything.
const notSynced = "RBAC: the API server has not loaded the roles and bindings yet (its informers are syncing); retry in a moment"

func (z *rbacAuthorizer) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if a.GetUser() == nil {
		return authorizer.DecisionNoOpinion, "", nil
	}
	for _, synced := range z.auth.synced {
		if !synced() {
			return authorizer.DecisionNoOpinion, notSynced, nil
		}
	}
	v := &authorizingVisitor{attrs: a}
	z.auth.resolver.visitRulesFor(a.GetUser(), a.GetNamespace(), v.visit)
	if v.allowed {
		return authorizer.DecisionAllow, v.reason, nil
	}
	reason := ""
	if len(v.errors) > 0 {
		reason = fmt.Sprintf("RBAC: %v", utilerrors.NewAggregate(v.errors))
	}
	return authorizer.DecisionNoOpinion, reason, nil
}

type authorizingVisitor struct {
	attrs   authorizer.Attributes
	allowed bool
	reason  string
	errors  []error
}

func (v *authorizingVisitor) visit(source fmt.Stringer, rule *rbacv1.PolicyRule, err error) bool {
	if rule != nil && ruleAllows(v.attrs, rule) {
		v.allowed = true
		v.reason = fmt.Sprintf("RBAC: allowed by %s", source.String())
		return false
	}
	if err != nil {
		v.errors = append(v.errors, err)
	}
	return true
}
