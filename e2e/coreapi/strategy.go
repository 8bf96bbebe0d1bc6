package coreapi

import (
	"context"
	"reflect"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/names"
)

// strategy is the create/update/delete strategy of one kind. With status set, writes to the
// main resource keep the stored status, and writes to /status keep everything but the status.
type strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	k           *kind
	statusWrite bool
}

func (s strategy) NamespaceScoped() bool          { return s.k.namespaced }
func (s strategy) AllowCreateOnUpdate() bool      { return false }
func (s strategy) AllowUnconditionalUpdate() bool { return true }
func (s strategy) Canonicalize(runtime.Object)    {}

func (s strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	if s.k.prepare != nil {
		s.k.prepare(obj, nil)
	}
}

func (s strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	if s.k.status {
		if s.statusWrite {
			// Only the status changes: the rest is the stored object's.
			status := statusOf(obj).Interface()
			reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(old).Elem())
			statusOf(obj).Set(reflect.ValueOf(status))
			return
		}
		statusOf(obj).Set(statusOf(old))
	}
	if s.k.prepare != nil {
		s.k.prepare(obj, old)
	}
}

func statusOf(obj runtime.Object) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName("Status")
}

func (s strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	m, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	errs := apivalidation.ValidateObjectMetaAccessor(m, s.k.namespaced, s.k.name, field.NewPath("metadata"))
	if s.k.validate != nil {
		errs = append(errs, s.k.validate(obj, nil)...)
	}
	return errs
}

func (s strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	m, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	om, _ := meta.Accessor(old)
	errs := apivalidation.ValidateObjectMetaAccessorUpdate(m, om, field.NewPath("metadata"))
	errs = append(errs, apivalidation.ValidateObjectMetaAccessor(m, s.k.namespaced, s.k.name, field.NewPath("metadata"))...)
	if s.k.validate != nil {
		errs = append(errs, s.k.validate(obj, old)...)
	}
	return errs
}

func (s strategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }

func (s strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// attrs are an object's labels and the fields its kind may be selected by.
func (k *kind) attrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, err
	}
	f := fields.Set{"metadata.name": m.GetName()}
	if k.namespaced {
		f["metadata.namespace"] = m.GetNamespace()
	}
	if k.fields != nil {
		for key, v := range k.fields(obj) {
			f[key] = v
		}
	}
	return labels.Set(m.GetLabels()), f, nil
}

func (k *kind) predicate(l labels.Selector, f fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{Label: l, Field: f, GetAttrs: k.attrs}
}

// column is one printed column of kubectl get, after NAME and before AGE.
type column struct {
	name  string
	value func(runtime.Object) interface{}
}

type table struct{ k *kind }

func (t table) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	// Events print as kubectl shows them (LAST SEEN first, the name only with -o wide).
	event := t.k.kind == "Event"
	out := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: "Name of the object"},
	}}
	if event {
		out.ColumnDefinitions[0].Priority = 1
		// The name moves last, so that the priority-0 columns come first.
		defer func() {
			out.ColumnDefinitions = append(out.ColumnDefinitions[1:], out.ColumnDefinitions[0])
		}()
	}
	for _, c := range t.k.columns {
		typ := "string"
		if c.name == "Data" || c.name == "Secrets" {
			typ = "integer"
		}
		out.ColumnDefinitions = append(out.ColumnDefinitions, metav1.TableColumnDefinition{Name: c.name, Type: typ})
	}
	if !event {
		out.ColumnDefinitions = append(out.ColumnDefinitions, metav1.TableColumnDefinition{Name: "Age", Type: "string", Format: "date"})
	}
	for _, c := range t.k.wide {
		out.ColumnDefinitions = append(out.ColumnDefinitions, metav1.TableColumnDefinition{Name: c.name, Type: "string", Priority: 1})
	}
	add := func(o runtime.Object) error {
		m, err := meta.Accessor(o)
		if err != nil {
			return err
		}
		cells := []interface{}{m.GetName()}
		for _, c := range t.k.columns {
			cells = append(cells, c.value(o))
		}
		if event {
			cells = append(cells[1:], m.GetName())
		} else {
			cells = append(cells, translateAge(m.GetCreationTimestamp().Time))
		}
		for _, c := range t.k.wide {
			cells = append(cells, c.value(o))
		}
		out.Rows = append(out.Rows, metav1.TableRow{Cells: cells, Object: runtime.RawExtension{Object: o}})
		return nil
	}
	if meta.IsListType(obj) {
		if l, err := meta.ListAccessor(obj); err == nil {
			out.ResourceVersion, out.Continue, out.RemainingItemCount = l.GetResourceVersion(), l.GetContinue(), l.GetRemainingItemCount()
		}
		if err := meta.EachListItem(obj, add); err != nil {
			return nil, err
		}
	} else if err := add(obj); err != nil {
		return nil, err
	}
	return out, nil
}

func translateAge(t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t))
}

// statusREST serves /status: a get, and an update that only changes the status.
type statusREST struct{ store rest.StandardStorage }

func (r statusREST) New() runtime.Object { return r.store.New() }
func (r statusREST) Destroy()            {}
func (r statusREST) Get(ctx context.Context, name string, o *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, o)
}
func (r statusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, cv rest.ValidateObjectFunc,
	uv rest.ValidateObjectUpdateFunc, forceAllowCreate bool, o *metav1.UpdateOptions) (runtime.Object, bool, error) {
	// Subresources never create.
	return r.store.Update(ctx, name, objInfo, cv, uv, false, o)
}
