// Command apiextensions-apiserver is upstream Kubernetes' apiextensions-apiserver (the same
// packages, flags and storage), with two changes: it also sets the generic server's OpenAPI v2
// config, so that the schemas of installed CRDs are published under /openapi/v2 and /openapi/v3
// (upstream's own main leaves it unset, and then `kubectl apply` (client-side validation) and
// `kubectl explain` cannot work against it); and it serves the core API (e2e/coreapi: core/v1
// and events.k8s.io/v1 on k8s.io/apiserver's generic registry) in front of it in the same
// process, with the apiextensions server as its delegate, as kube-apiserver chains them.
// Built by e2e/tools/install.sh from Debian's Go sources.
package main

import (
	"context"
	"os"

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

func run(ctx context.Context, o *options.CustomResourceDefinitionsServerOptions) error {
	config, err := o.Config()
	if err != nil {
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
	core, err := coreapi.New(coreConfig, o.RecommendedOptions.Etcd.StorageConfig, crds.GenericAPIServer)
	if err != nil {
		return err
	}
	return core.PrepareRun().RunWithContext(ctx)
}

func main() {
	ctx := genericapiserver.SetupSignalContext()
	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
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
			return run(c.Context(), o)
		},
	}
	cmd.SetContext(ctx)
	o.AddFlags(cmd.Flags())
	os.Exit(cli.Run(cmd))
}
