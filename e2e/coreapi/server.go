// Package coreapi serves the core/v1 kinds Troupe, its chart and helm use (namespaces,
// serviceaccounts, secrets, configmaps, services, pods, events), events.k8s.io/v1 Events,
// rbac.authorization.k8s.io/v1 (enforced for everyone but system:masters: auth.go) and policy/v1 PodDisruptionBudgets
// from k8s.io/apiserver's generic registry on etcd, in the API server process (the apiextensions
// server is its delegate, as in kube-apiserver's chain). Built from Debian's Go sources.
package coreapi

import (
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/storage/names"
	"k8s.io/apiserver/pkg/storage/storagebackend"
)

// Prefix is where the core objects live in etcd (kube-apiserver's would be /registry).
const Prefix = "/registry/troupe-core"

// restOptions gives every resource its storage under Prefix; events.k8s.io Events share the
// core Events' keys and are stored as core/v1 Events.
type restOptions struct{ base storagebackend.Config }

func (o restOptions) GetRESTOptions(gr schema.GroupResource, _ runtime.Object) (generic.RESTOptions, error) {
	cfg := o.base.ForResource(gr)
	cfg.Prefix = Prefix
	cfg.Codec = Codecs.LegacyCodec(schema.GroupVersion{Group: gr.Group, Version: "v1"})
	if gr.Group == eventsv1.GroupName {
		cfg.Codec = Codecs.CodecForVersions(
			Codecs.LegacyCodec(corev1.SchemeGroupVersion), Codecs.UniversalDeserializer(),
			kindAs(corev1.SchemeGroupVersion.WithKind("Event")), kindAs(eventsInternal.WithKind("Event")))
	}
	return generic.RESTOptions{
		StorageConfig:           cfg,
		Decorator:               generic.UndecoratedStorage,
		DeleteCollectionWorkers: 1,
		ResourcePrefix:          "/" + gr.Resource,
		CountMetricPollPeriod:   time.Minute,
	}, nil
}

func storeFor(k *kind, opts generic.RESTOptionsGetter) (map[string]rest.Storage, error) {
	s := strategy{ObjectTyper: Scheme, NameGenerator: names.SimpleNameGenerator, k: k}
	gr := schema.GroupResource{Group: k.group, Resource: k.resource}
	store := &genericregistry.Store{
		NewFunc:                   k.new,
		NewListFunc:               k.newList,
		DefaultQualifiedResource:  gr,
		SingularQualifiedResource: schema.GroupResource{Group: k.group, Resource: k.singular},
		PredicateFunc:             k.predicate,
		CreateStrategy:            s,
		UpdateStrategy:            s,
		DeleteStrategy:            s,
		TableConvertor:            table{k},
	}
	if k.gracefulDelete != nil {
		store.DeleteStrategy = gracefulStrategy{s}
	}
	if err := store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: opts, AttrFunc: k.attrs}); err != nil {
		return nil, fmt.Errorf("%s: %w", gr, err)
	}
	out := map[string]rest.Storage{k.resource: &shortNamed{store, k.shortNames}}
	if k.status {
		status := *store
		status.UpdateStrategy = strategy{ObjectTyper: Scheme, NameGenerator: names.SimpleNameGenerator, k: k, statusWrite: true}
		out[k.resource+"/status"] = statusREST{&status}
	}
	return out, nil
}

// shortNamed adds kubectl's short names (ns, svc, cm, …) to discovery.
type shortNamed struct {
	*genericregistry.Store
	short []string
}

func (s *shortNamed) ShortNames() []string { return s.short }

// New builds the core API server on a copy of the apiextensions server's generic config (same
// TLS, authentication, authorization and etcd), with delegate answering what it does not serve.
// auth gets the ServiceAccounts' storage, serviceaccounts/token when it has Tokens, and its
// informers start with this server.
func New(cfg genericapiserver.RecommendedConfig, etcd storagebackend.Config, delegate genericapiserver.DelegationTarget, auth *Auth) (*genericapiserver.GenericAPIServer, error) {
	cfg.Serializer = Codecs
	// The apiextensions server owns the hooks of the shared config (as in kube-apiserver's chain).
	cfg.PostStartHooks = map[string]genericapiserver.PostStartHookConfigEntry{}
	cfg.RESTOptionsGetter = nil
	// OpenAPI stays the apiextensions server's (it publishes the CRDs); these definitions only
	// feed server-side apply.
	cfg.OpenAPIConfig = nil
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(definitions, openapinamer.NewDefinitionNamer(Scheme))
	cfg.SkipOpenAPIInstallation = true
	server, err := cfg.Complete().New("troupe-core", delegate)
	if err != nil {
		return nil, err
	}
	opts := restOptions{etcd}
	// One APIGroupInfo per group, in the order of kinds: the core group first.
	var order []string
	groups := map[string]*genericapiserver.APIGroupInfo{}
	for _, k := range kinds {
		g, ok := groups[k.group]
		if !ok {
			info := genericapiserver.NewDefaultAPIGroupInfo(k.group, Scheme, metav1.ParameterCodec, Codecs)
			info.VersionedResourcesStorageMap["v1"] = map[string]rest.Storage{}
			g, groups[k.group] = &info, &info
			order = append(order, k.group)
		}
		stores, err := storeFor(k, opts)
		if err != nil {
			return nil, err
		}
		for path, s := range stores {
			g.VersionedResourcesStorageMap["v1"][path] = s
		}
	}
	core := groups[""]
	accounts := core.VersionedResourcesStorageMap["v1"]["serviceaccounts"].(rest.Getter)
	auth.accountStore = accounts
	if auth.Tokens != nil {
		core.VersionedResourcesStorageMap["v1"]["serviceaccounts/token"] = &tokenREST{accounts: accounts, tokens: auth.Tokens}
	}
	// The RBAC and ServiceAccount informers list through this server: they start once it serves.
	server.AddPostStartHookOrDie("troupe-auth-informers", func(hook genericapiserver.PostStartHookContext) error {
		auth.start(hook)
		return nil
	})
	// The namespaces every cluster has, as kube-apiserver's bootstrap controller makes them.
	server.AddPostStartHookOrDie("troupe-core-namespaces", func(hook genericapiserver.PostStartHookContext) error {
		store := core.VersionedResourcesStorageMap["v1"]["namespaces"].(rest.Creater)
		for _, name := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
			_, err := store.Create(genericapirequest.WithNamespace(genericapirequest.NewContext(), metav1.NamespaceNone), ns, nil, &metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating namespace %s: %w", name, err)
			}
		}
		return nil
	})
	if err := server.InstallLegacyAPIGroup(genericapiserver.DefaultLegacyAPIPrefix, core); err != nil {
		return nil, err
	}
	for _, g := range order[1:] {
		if err := server.InstallAPIGroup(groups[g]); err != nil {
			return nil, err
		}
	}
	// authentication.k8s.io/v1: SelfSubjectReview (kubectl auth whoami). TokenReview is not
	// served: nothing here delegates authentication to this server.
	whoami := genericapiserver.NewDefaultAPIGroupInfo(authenticationv1.GroupName, Scheme, metav1.ParameterCodec, Codecs)
	whoami.VersionedResourcesStorageMap["v1"] = map[string]rest.Storage{"selfsubjectreviews": selfSubjectReviewREST{}}
	if err := server.InstallAPIGroup(&whoami); err != nil {
		return nil, err
	}
	return server, nil
}
