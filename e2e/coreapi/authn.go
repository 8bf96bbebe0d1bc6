package coreapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gopkg.in/square/go-jose.v2/jwt"

	corev1 "k8s.io/api/core/v1"
	apiserverconfig "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/anonymous"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/authentication/request/union"
	"k8s.io/apiserver/pkg/authentication/request/websocket"
	"k8s.io/apiserver/pkg/authentication/request/x509"
	apiserverserviceaccount "k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
)

// accountGetter finds a ServiceAccount: the informer's cache first, the store when the cache
// does not have it (yet), as kube-apiserver's token getter does.
type accountGetter func(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)

// Authenticator is what kube-apiserver's chain is, less what is not used here: client
// certificates signed by the client CA (the admin's, O=system:masters), then service-account
// bearer tokens (in the Authorization header or a websocket protocol), the
// system:authenticated group added to either, and anonymous requests for neither. A bearer token
// that is not valid fails the request (401), it never falls back to anonymous.
func Authenticator(clientCA dynamiccertificates.CAContentProvider, tokens *Tokens, accounts accountGetter) authenticator.Request {
	var chain []authenticator.Request
	if clientCA != nil {
		chain = append(chain, x509.NewDynamic(clientCA.VerifyOptions, x509.CommonNameUserConversion))
	}
	if tokens != nil {
		t := &tokenAuthenticator{tokens: tokens, accounts: accounts}
		chain = append(chain, bearertoken.New(t), websocket.NewProtocolAuthenticator(t))
	}
	authn := group.NewAuthenticatedGroupAdder(union.New(chain...))
	return union.NewFailOnError(authn, anonymous.NewAuthenticator([]apiserverconfig.AnonymousAuthCondition{}))
}

// tokenAuthenticator verifies tokens as kube's JWTTokenAuthenticator and its service-account
// validator do (pkg/serviceaccount/jwt.go and claims.go).
type tokenAuthenticator struct {
	tokens   *Tokens
	accounts accountGetter
}

func (a *tokenAuthenticator) AuthenticateToken(ctx context.Context, data string) (*authenticator.Response, bool, error) {
	// Not a JWT of this issuer: not ours (the bearer token authenticator then answers 401).
	if !a.hasOurIssuer(data) {
		return nil, false, nil
	}
	tok, err := jwt.ParseSigned(data)
	if err != nil {
		return nil, false, nil
	}
	public := &jwt.Claims{}
	private := &privateClaims{}
	if err := tok.Claims(a.tokens.public, public, private); err != nil {
		return nil, false, err
	}
	// The issuer again: it was read before the signature was checked.
	if public.Issuer != a.tokens.Issuer {
		return nil, false, fmt.Errorf("token issuer %q is invalid", public.Issuer)
	}
	tokenAudiences := authenticator.Audiences(public.Audience)
	if len(tokenAudiences) == 0 {
		tokenAudiences = a.tokens.APIAudiences
	}
	requested, ok := authenticator.AudiencesFrom(ctx)
	if !ok {
		requested = a.tokens.APIAudiences
	}
	auds := tokenAudiences.Intersect(requested)
	if len(auds) == 0 {
		return nil, false, fmt.Errorf("token audiences %q is invalid for the target audiences %q", tokenAudiences, requested)
	}
	// exp and nbf, with go-jose's default leeway of a minute, as kube validates them.
	now := time.Now()
	switch err := public.Validate(jwt.Expected{Time: now}); {
	case err == nil:
	case errors.Is(err, jwt.ErrExpired):
		return nil, false, errors.New("Token has expired.")
	default:
		return nil, false, errors.New("Token could not be validated.")
	}
	k := private.Kubernetes
	// The ServiceAccount must still exist, the same one (uid): deleting it revokes its tokens.
	sa, err := a.accounts(ctx, k.Namespace, k.Svcacct.Name)
	if err != nil {
		return nil, false, err
	}
	if sa.DeletionTimestamp != nil && sa.DeletionTimestamp.Time.Before(now.Add(-jwt.DefaultLeeway)) {
		return nil, false, fmt.Errorf("ServiceAccount %s/%s has been deleted", k.Namespace, k.Svcacct.Name)
	}
	if string(sa.UID) != k.Svcacct.UID {
		return nil, false, fmt.Errorf("ServiceAccount UID (%s) does not match claim (%s)", sa.UID, k.Svcacct.UID)
	}
	info := &apiserverserviceaccount.ServiceAccountInfo{
		Namespace: k.Namespace,
		Name:      k.Svcacct.Name,
		UID:       k.Svcacct.UID,
	}
	// A bound token names its Pod in the user's extra, but the Pod's existence is not checked
	// here (kube-apiserver rejects a token whose Pod is gone; the node agent publishes Pods,
	// but the authenticator does not read them).
	if k.Pod != nil {
		info.PodName, info.PodUID = k.Pod.Name, k.Pod.UID
	}
	if public.ID != "" {
		info.CredentialID = "JTI=" + public.ID
	}
	return &authenticator.Response{User: info.UserInfo(), Audiences: auds}, true, nil
}

// hasOurIssuer reads the (unverified) issuer, so that tokens of other issuers are not checked
// against our key, as kube's authenticator does.
func (a *tokenAuthenticator) hasOurIssuer(data string) bool {
	if strings.HasPrefix(strings.TrimSpace(data), "{") {
		return false
	}
	parts := strings.Split(data, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var claims struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return false
	}
	return claims.Issuer == a.tokens.Issuer
}

var _ authenticator.Token = &tokenAuthenticator{}
