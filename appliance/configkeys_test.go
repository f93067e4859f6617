package appliance

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// tomlKeys lists the dotted keys the loader decodes (rawConfig's toml
// tags), tables excluded.
func tomlKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[duration]() {
			out = append(out, tomlKeys(ft, key)...)
			continue
		}
		out = append(out, key)
	}
	return out
}

// TestConfigKeysDocumented: every key the loader accepts is in ConfigKeys
// (the source of fwpair.toml(5)), and every documented key is accepted.
func TestConfigKeysDocumented(t *testing.T) {
	accepted := map[string]bool{}
	for _, k := range tomlKeys(reflect.TypeFor[rawConfig](), "") {
		accepted[k] = true
	}
	if len(accepted) < 40 {
		t.Fatalf("only %d keys found: did rawConfig's layout change?", len(accepted))
	}
	documented := map[string]bool{}
	for _, k := range ConfigKeys {
		if documented[k.Key] {
			t.Errorf("%s documented twice", k.Key)
		}
		documented[k.Key] = true
		if !accepted[k.Key] {
			t.Errorf("%s is documented but the loader does not accept it", k.Key)
		}
		if k.Doc == "" || k.Type == "" || k.Default == "" {
			t.Errorf("%s: type, default and doc are required", k.Key)
		}
	}
	for k := range accepted {
		if !documented[k] {
			t.Errorf("%s is accepted but not documented in ConfigKeys (fwpair.toml(5))", k)
		}
	}
}

// TestConfigKeysInReference: etc/fwpair.toml, the reference file, shows
// every key.
func TestConfigKeysInReference(t *testing.T) {
	data, err := os.ReadFile("../etc/fwpair.toml")
	if err != nil {
		t.Fatal(err)
	}
	lines := indexKeys(data)
	for _, k := range ConfigKeys {
		switch k.Key {
		case "sync.link.multicast_group":
			continue // shown commented out: it excludes peer
		case "sync.auth.key_files", "sync.auth.max_clock_skew":
			continue // shown commented out: they need key files on the node
		}
		if _, ok := lines[k.Key]; !ok {
			t.Errorf("etc/fwpair.toml does not show %s", k.Key)
		}
	}
}
