// Command apiextensions-apiserver is upstream Kubernetes' apiextensions-apiserver (the same
// packages, flags and storage), with two changes: it also sets the generic server's OpenAPI v2
// config, so that the schemas of installed CRDs are published under /openapi/v2 and /openapi/v3
// (upstream's own main leaves it unset, and then `kubectl apply` (client-side validation) and
// `kubectl explain` cannot work against it); and it serves the core API (e2e/coreapi: core/v1
// and events.k8s.io/v1 on k8s.io/apiserver's generic registry) in front of it in the same
// process, with the apiextensions server as its delegate, as kube-apiserver chains them. It
// authenticates and authorizes as kube-apiserver does, not by delegation (nothing here serves
// TokenReview or SubjectAccessReview): client certificates and the service-account tokens it
// issues itself (serviceaccounts/token), system:masters allowed everything and everyone else
// judged by RBAC from the stored objects (e2e/coreapi/auth.go).
// Built by e2e/tools/install.sh from Debian's Go sources.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"troupe.dev/coreapi"

	"k8s.io/apiextensions-apiserver/pkg/apiserver"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/util/openapi"
	scheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/component-base/cli"
)

// serviceAccountFlags are kube-apiserver's flags of the same names.
type serviceAccountFlags struct {
	signingKeyFile string
	issuer         string
	maxExpiration  time.Duration
}

func (f *serviceAccountFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.signingKeyFile, "service-account-signing-key-file", "",
		"PEM private key (RSA or EC) that signs service-account tokens; without it, serviceaccounts/token is not served and bearer tokens are refused")
	fs.StringVar(&f.issuer, "service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"the tokens' iss claim, and the audience a token needs to be accepted by this server")
	fs.DurationVar(&f.maxExpiration, "service-account-max-token-expiration", 48*time.Hour,
		"the longest validity a TokenRequest gets (longer requests are cut to it)")
}

func run(ctx context.Context, o *options.CustomResourceDefinitionsServerOptions, sa serviceAccountFlags) error {
	// No TokenReview or SubjectAccessReview delegation (the authenticator and authorizer are
	// replaced below): without remote kubeconfigs the options build no webhook clients.
	o.RecommendedOptions.Authentication.RemoteKubeConfigFileOptional = true
	o.RecommendedOptions.Authorization.RemoteKubeConfigFileOptional = true
	config, err := o.Config()
	if err != nil {
		return err
	}
	var tokens *coreapi.Tokens
	if sa.signingKeyFile != "" {
		if tokens, err = coreapi.NewTokens(sa.signingKeyFile, sa.issuer, sa.maxExpiration); err != nil {
			return err
		}
	}
	auth, err := coreapi.NewAuth(config.GenericConfig.LoopbackClientConfig, tokens)
	if err != nil {
		return err
	}
	clientCA := config.GenericConfig.SecureServing.ClientCA
	if clientCA == nil {
		return fmt.Errorf("--client-ca-file is required: the admin authenticates with a client certificate")
	}
	config.GenericConfig.Authentication.Authenticator = auth.Authenticator(clientCA)
	config.GenericConfig.Authentication.APIAudiences = auth.APIAudiences()
	authz := o.RecommendedOptions.Authorization
	if config.GenericConfig.Authorization.Authorizer, err = auth.Authorizer(authz.AlwaysAllowGroups, authz.AlwaysAllowPaths); err != nil {
		return err
	}
	defs := openapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions)
	namer := openapinamer.NewDefinitionNamer(apiserver.Scheme, scheme.Scheme)
	v2 := genericapiserver.DefaultOpenAPIConfig(defs, namer)
	v2.Info.Title = "troupe-local-apiserver"
	config.GenericConfig.OpenAPIConfig = v2
	// The core server's generic config is a copy taken before the apiextensions one is completed,
	// as kube-apiserver derives its chain's configs from one.
	coreConfig := *config.GenericConfig
	crds, err := config.Complete().New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	core, err := coreapi.New(coreConfig, o.RecommendedOptions.Etcd.StorageConfig, crds.GenericAPIServer, auth)
	if err != nil {
		return err
	}
	return core.PrepareRun().RunWithContext(ctx)
}

func main() {
	ctx := genericapiserver.SetupSignalContext()
	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	var sa serviceAccountFlags
	cmd := &cobra.Command{
		Use:   "apiextensions-apiserver",
		Short: "Upstream apiextensions-apiserver that also publishes OpenAPI v2/v3",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.ServerRunOptions.ComponentGlobalsRegistry.Set()
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return run(c.Context(), o, sa)
		},
	}
	cmd.SetContext(ctx)
	o.AddFlags(cmd.Flags())
	sa.add(cmd)
	os.Exit(cli.Run(cmd))
}
