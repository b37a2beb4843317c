package datastore

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/calyx-net/calyx/internal/api"
)

// cloneResource returns an independent deep copy of r. Resources are plain
// data (structs, pointers, slices, maps, strings, numbers, bools, all
// exported), so a reflective copy is exact, and it costs a fraction of
// api's DeepCopyResource, which goes through JSON. Like a JSON round trip,
// it turns an empty slice or map in an omitempty field into nil, so that
// what a write returns reads the same as what a later Get decodes.
func cloneResource(r api.Resource) api.Resource {
	v := reflect.ValueOf(r)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return r.DeepCopyResource()
	}
	return cloneValue(v).Interface().(api.Resource)
}

func cloneValue(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		n := reflect.New(v.Type().Elem())
		n.Elem().Set(cloneValue(v.Elem()))
		return n
	case reflect.Struct:
		n := reflect.New(v.Type()).Elem()
		n.Set(v)
		for _, f := range structPlan(v.Type()) {
			c := cloneValue(v.Field(f.index))
			if f.omitEmpty && (c.Kind() == reflect.Slice || c.Kind() == reflect.Map) && c.Len() == 0 {
				c = reflect.Zero(c.Type())
			}
			n.Field(f.index).Set(c)
		}
		return n
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		if s, ok := v.Interface().([]string); ok {
			return reflect.ValueOf(slices.Clone(s))
		}
		n := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		if !holdsReferences(v.Type().Elem().Kind()) {
			reflect.Copy(n, v)
			return n
		}
		for i := range v.Len() {
			n.Index(i).Set(cloneValue(v.Index(i)))
		}
		return n
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		if m, ok := v.Interface().(map[string]string); ok {
			return reflect.ValueOf(maps.Clone(m))
		}
		n := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			n.SetMapIndex(cloneValue(it.Key()), cloneValue(it.Value()))
		}
		return n
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		n := reflect.New(v.Type()).Elem()
		n.Set(cloneValue(v.Elem()))
		return n
	case reflect.Array:
		n := reflect.New(v.Type()).Elem()
		for i := range v.Len() {
			n.Index(i).Set(cloneValue(v.Index(i)))
		}
		return n
	}
	return v // strings, numbers, bools: values
}

// holdsReferences reports whether values of kind k may share memory when
// copied by assignment.
func holdsReferences(k reflect.Kind) bool {
	switch k {
	case reflect.Pointer, reflect.Struct, reflect.Slice, reflect.Map, reflect.Interface, reflect.Array:
		return true
	}
	return false
}

// fieldPlan is a struct field that cloneValue must copy deeply.
type fieldPlan struct {
	index     int
	omitEmpty bool // tagged json omitempty
}

// plans caches, per struct type, the fields that hold references.
var plans sync.Map // reflect.Type -> []fieldPlan

func structPlan(t reflect.Type) []fieldPlan {
	if p, ok := plans.Load(t); ok {
		return p.([]fieldPlan)
	}
	var p []fieldPlan
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || !holdsReferences(f.Type.Kind()) {
			continue
		}
		_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		p = append(p, fieldPlan{index: i, omitEmpty: slices.Contains(strings.Split(opts, ","), "omitempty")})
	}
	plans.Store(t, p)
	return p
}
