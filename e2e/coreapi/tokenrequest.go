package coreapi

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"
)

// minTokenSeconds and defaultTokenSeconds are kube's: validation refuses less than 10 minutes,
// and the v1 defaulting gives an hour.
const (
	minTokenSeconds     = 10 * 60
	defaultTokenSeconds = 60 * 60
)

var tokenRequestKind = authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")

// tokenREST is serviceaccounts/token, kube-apiserver's TokenRequest
// (pkg/registry/core/serviceaccount/storage/token.go): POST an authentication.k8s.io/v1
// TokenRequest, answered with the same object, its spec defaulted and its status holding the
// token and when it expires.
type tokenREST struct {
	accounts rest.Getter
	tokens   *Tokens
}

var (
	_ rest.NamedCreater             = &tokenREST{}
	_ rest.GroupVersionKindProvider = &tokenREST{}
)

func (r *tokenREST) New() runtime.Object { return &authenticationv1.TokenRequest{} }
func (r *tokenREST) Destroy()            {}

func (r *tokenREST) GroupVersionKind(schema.GroupVersion) schema.GroupVersionKind {
	return tokenRequestKind
}

func (r *tokenREST) Create(ctx context.Context, name string, obj runtime.Object, createValidation rest.ValidateObjectFunc, _ *metav1.CreateOptions) (runtime.Object, error) {
	if createValidation != nil {
		if err := createValidation(ctx, obj); err != nil {
			return nil, err
		}
	}
	out := obj.(*authenticationv1.TokenRequest)
	if out.Spec.ExpirationSeconds == nil {
		seconds := int64(defaultTokenSeconds)
		out.Spec.ExpirationSeconds = &seconds
	}
	if errs := validateTokenRequest(out); len(errs) != 0 {
		return nil, apierrors.NewInvalid(tokenRequestKind.GroupKind(), "", errs)
	}
	got, err := r.accounts.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	sa := got.(*corev1.ServiceAccount)
	subject := tokenSubject{namespace: sa.Namespace, name: sa.Name, uid: string(sa.UID)}
	if bound := out.Spec.BoundObjectRef; bound != nil {
		gvk := schema.FromAPIVersionAndKind(bound.APIVersion, bound.Kind)
		if gvk.Group != "" || gvk.Kind != "Pod" {
			// kube also binds to Secrets and Nodes; nothing here needs them.
			return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token to object of type %s", gvk.String()))
		}
		// kube-apiserver reads the Pod and takes its uid; this server does not read Pods (the
		// node agent, which asks for these tokens, knows the uid), so the reference must carry both.
		if bound.Name == "" || bound.UID == "" {
			return nil, apierrors.NewBadRequest("a token bound to a Pod needs boundObjectRef.name and boundObjectRef.uid here: Pods are not read from the API on this control plane")
		}
		subject.pod = &ref{Name: bound.Name, UID: string(bound.UID)}
	}
	if len(out.Spec.Audiences) == 0 {
		out.Spec.Audiences = r.tokens.APIAudiences
	}
	if max := int64(r.tokens.MaxExpiration / time.Second); max > 0 && *out.Spec.ExpirationSeconds > max {
		out.Spec.ExpirationSeconds = &max
	}
	token, expiry, err := r.tokens.issue(subject, out.Spec.Audiences, time.Duration(*out.Spec.ExpirationSeconds)*time.Second)
	if err != nil {
		return nil, err
	}
	out.Status = authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.Time{Time: expiry}}
	return out, nil
}

// validateTokenRequest is kube's ValidateTokenRequest (pkg/apis/authentication/validation), less
// the webhook-bound attestations.
func validateTokenRequest(tr *authenticationv1.TokenRequest) field.ErrorList {
	var errs field.ErrorList
	path := field.NewPath("spec", "expirationSeconds")
	exp := *tr.Spec.ExpirationSeconds
	if exp < minTokenSeconds {
		errs = append(errs, field.Invalid(path, exp, "may not specify a duration less than 10 minutes"))
	}
	if exp > 1<<32 {
		errs = append(errs, field.Invalid(path, exp, "may not specify a duration larger than 2^32 seconds"))
	}
	return errs
}
