package appliance

import (
	"reflect"
	"strings"
)

// A raw field tagged `to:"Path"` is a key that goes as it is into the
// field Path of the configuration being built (an engine's config, which
// already holds the engine's defaults; dots walk into nested structs, e.g.
// "GARP.Spacing"). assign copies the keys that are set; checks that need
// more than the value's type (ranges, allowed values) follow it in the
// builders. Adding such a key is one raw field and its ConfigKeys row.

// assign copies every set `to` field of raw (a pointer to a raw table) into
// dst (a pointer to the struct being built). key is the table's dotted key
// for errors.
func (v *validator) assign(key string, raw, dst any) {
	rv, dv := reflect.ValueOf(raw).Elem(), reflect.ValueOf(dst).Elem()
	for i := range rv.NumField() {
		sf := rv.Type().Field(i)
		path := sf.Tag.Get("to")
		if path == "" {
			continue
		}
		val, ok := setValue(rv.Field(i))
		if !ok {
			continue
		}
		f := dv
		for _, name := range strings.Split(path, ".") {
			if f.Kind() != reflect.Struct {
				f = reflect.Value{}
				break
			}
			f = f.FieldByName(name)
		}
		k := join(key, strings.Split(sf.Tag.Get("toml"), ",")[0])
		switch {
		case !f.IsValid() || !f.CanSet():
			v.errorf(k, "internal error: no field %s to hold it", path)
		case f.Kind() == reflect.Bool && val.Kind() == reflect.Bool:
			f.SetBool(val.Bool())
		case f.Kind() == reflect.String && val.Kind() == reflect.String:
			f.SetString(val.String())
		case f.CanInt() && val.CanInt():
			f.SetInt(val.Int())
		case f.CanUint() && val.CanInt():
			f.SetUint(uint64(val.Int())) // range-checked by the builder
		default:
			v.errorf(k, "internal error: %s cannot hold a %s", path, val.Type())
		}
	}
}

// setValue returns the value of a raw field that the file sets: a non-nil
// pointer, a given duration, a non-empty string.
func setValue(f reflect.Value) (reflect.Value, bool) {
	if d, ok := f.Interface().(duration); ok {
		return reflect.ValueOf(d.Duration), d.set
	}
	switch f.Kind() {
	case reflect.Pointer:
		if f.IsNil() {
			return reflect.Value{}, false
		}
		return f.Elem(), true
	case reflect.String:
		return f, f.String() != ""
	}
	return reflect.Value{}, false
}
