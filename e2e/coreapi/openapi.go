package coreapi

import (
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/kube-openapi/pkg/common"
	openapiutil "k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// definitions are OpenAPI schemas of the served types, derived from their Go structs and json
// tags (kube-apiserver's come from generated code in k8s.io/kubernetes, not packaged). The server
// needs them for server-side apply: maps are merged by key, lists are atomic (no list-map keys).
func definitions(common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	out := map[string]common.OpenAPIDefinition{}
	for gvk, t := range Scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		out[openapiutil.GetCanonicalTypeName(reflect.New(t).Interface())] = common.OpenAPIDefinition{Schema: schemaOf(t, map[reflect.Type]bool{})}
	}
	return out
}

var (
	openAPITyped = reflect.TypeOf((*interface{ OpenAPISchemaType() []string })(nil)).Elem()
	intOrString  = reflect.TypeOf(intstr.IntOrString{})
	opaque       = map[reflect.Type]bool{reflect.TypeOf(metav1.FieldsV1{}): true, reflect.TypeOf(runtime.RawExtension{}): true}
)

func schemaOf(t reflect.Type, visiting map[reflect.Type]bool) spec.Schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	s := spec.Schema{}
	switch {
	case t == intOrString:
		s.VendorExtensible.AddExtension("x-kubernetes-int-or-string", true)
		return s
	case opaque[t] || visiting[t]:
		s.Type = []string{"object"}
		s.VendorExtensible.AddExtension("x-kubernetes-preserve-unknown-fields", true)
		return s
	case t.Implements(openAPITyped) || reflect.PointerTo(t).Implements(openAPITyped):
		v := reflect.New(t).Interface()
		s.Type = v.(interface{ OpenAPISchemaType() []string }).OpenAPISchemaType()
		if f, ok := v.(interface{ OpenAPISchemaFormat() string }); ok {
			s.Format = f.OpenAPISchemaFormat()
		}
		return s
	}
	switch t.Kind() {
	case reflect.String:
		s.Type = []string{"string"}
	case reflect.Bool:
		s.Type = []string{"boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s.Type, s.Format = []string{"integer"}, "int64"
	case reflect.Float32, reflect.Float64:
		s.Type, s.Format = []string{"number"}, "double"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			s.Type, s.Format = []string{"string"}, "byte"
			break
		}
		item := schemaOf(t.Elem(), visiting)
		s.Type = []string{"array"}
		s.Items = &spec.SchemaOrArray{Schema: &item}
		s.VendorExtensible.AddExtension("x-kubernetes-list-type", "atomic")
	case reflect.Map:
		value := schemaOf(t.Elem(), visiting)
		s.Type = []string{"object"}
		s.AdditionalProperties = &spec.SchemaOrBool{Allows: true, Schema: &value}
	case reflect.Struct:
		visiting[t] = true
		defer delete(visiting, t)
		s.Type = []string{"object"}
		s.Properties = map[string]spec.Schema{}
		addFields(&s, t, visiting)
	default:
		s.Type = []string{"object"}
		s.VendorExtensible.AddExtension("x-kubernetes-preserve-unknown-fields", true)
	}
	return s
}

func addFields(s *spec.Schema, t reflect.Type, visiting map[reflect.Type]bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" && (f.Anonymous || strings.Contains(opts, "inline")) {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(s, ft, visiting)
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		s.Properties[name] = schemaOf(f.Type, visiting)
	}
}
