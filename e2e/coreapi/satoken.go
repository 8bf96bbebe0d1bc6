package coreapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"time"

	jose "gopkg.in/square/go-jose.v2"
	"gopkg.in/square/go-jose.v2/jwt"

	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	apiserverserviceaccount "k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/util/keyutil"
)

// Tokens issues and verifies service-account tokens as kube-apiserver does (k8s.io/kubernetes
// pkg/serviceaccount, not packaged by Debian): JWTs signed with one private key, carrying the
// registered claims and kube's private "kubernetes.io" claim.
type Tokens struct {
	Issuer string
	// APIAudiences are the audiences a token must have one of to be accepted by this server, and
	// what a TokenRequest without audiences gets: the issuer, as kube-apiserver defaults them.
	APIAudiences authenticator.Audiences
	// MaxExpiration caps a TokenRequest's expirationSeconds (--service-account-max-token-expiration).
	MaxExpiration time.Duration

	signer jose.Signer
	public crypto.PublicKey
	keyID  string
}

// privateClaims is kube's "kubernetes.io" claim (pkg/serviceaccount/claims.go).
type privateClaims struct {
	Kubernetes kubernetesClaims `json:"kubernetes.io,omitempty"`
}

type kubernetesClaims struct {
	Namespace string `json:"namespace,omitempty"`
	Svcacct   ref    `json:"serviceaccount,omitempty"`
	Pod       *ref   `json:"pod,omitempty"`
}

type ref struct {
	Name string `json:"name,omitempty"`
	UID  string `json:"uid,omitempty"`
}

// NewTokens loads the signing key (PEM: RSA, PKCS#8 or EC, as --service-account-signing-key-file
// takes) and signs with RS256, or ES256/384/512 by the curve, as kube does.
func NewTokens(keyFile, issuer string, maxExpiration time.Duration) (*Tokens, error) {
	key, err := keyutil.PrivateKeyFromFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("service account signing key: %w", err)
	}
	var alg jose.SignatureAlgorithm
	var public crypto.PublicKey
	switch k := key.(type) {
	case *rsa.PrivateKey:
		alg, public = jose.RS256, &k.PublicKey
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		case elliptic.P521():
			alg = jose.ES512
		default:
			return nil, fmt.Errorf("service account signing key: unsupported curve")
		}
		public = &k.PublicKey
	default:
		return nil, fmt.Errorf("service account signing key: unsupported key type %T", key)
	}
	keyID, err := keyIDFromPublicKey(public)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: alg,
		Key:       &jose.JSONWebKey{Algorithm: string(alg), Key: key, KeyID: keyID, Use: "sig"},
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("service account signer: %w", err)
	}
	return &Tokens{
		Issuer:        issuer,
		APIAudiences:  authenticator.Audiences{issuer},
		MaxExpiration: maxExpiration,
		signer:        signer,
		public:        public,
		keyID:         keyID,
	}, nil
}

// keyIDFromPublicKey is kube's "kid": the base64url SHA-256 of the public key's DER, so that
// verifiers can pick a key without the key being recoverable from the id.
func keyIDFromPublicKey(public crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(public)
	if err != nil {
		return "", fmt.Errorf("service account key id: %w", err)
	}
	sum := crypto.SHA256.New()
	sum.Write(der)
	return base64.RawURLEncoding.EncodeToString(sum.Sum(nil)), nil
}

// tokenSubject is what a token is issued for: the ServiceAccount and, for a bound token, its Pod.
type tokenSubject struct {
	namespace, name, uid string
	pod                  *ref
}

// issue signs a token for subject valid for expiration from now, with kube's claims: iss, sub
// (the ServiceAccount's username), aud, exp, iat, nbf, jti (a fresh UUID, which becomes the
// user's credential id) and kubernetes.io. Returns the token and its expiry.
func (t *Tokens) issue(subject tokenSubject, audiences []string, expiration time.Duration) (string, time.Time, error) {
	now := time.Now()
	exp := now.Add(expiration)
	public := &jwt.Claims{
		Issuer:    t.Issuer,
		Subject:   apiserverserviceaccount.MakeUsername(subject.namespace, subject.name),
		Audience:  jwt.Audience(audiences),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(exp),
		ID:        string(uuid.NewUUID()),
	}
	private := &privateClaims{Kubernetes: kubernetesClaims{
		Namespace: subject.namespace,
		Svcacct:   ref{Name: subject.name, UID: subject.uid},
		Pod:       subject.pod,
	}}
	// Claims are applied in reverse precedence, as kube's generator does: the public ones win.
	token, err := jwt.Signed(t.signer).Claims(private).Claims(public).CompactSerialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("failed to generate token: %w", err)
	}
	return token, public.Expiry.Time(), nil
}
