package migrate

import (
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name     string
		fs       fstest.MapFS
		wantErr  bool
		versions []int
	}{
		{"ordered", fstest.MapFS{
			"m/0002_more.sql": file("B"), "m/0001_init.sql": file("A"), "m/README": file("x"), "m/0010_later.sql.txt": file("x"),
		}, false, []int{1, 2}},
		{"gap", fstest.MapFS{"m/0001_init.sql": file("A"), "m/0003_x.sql": file("C")}, true, nil},
		{"duplicate", fstest.MapFS{"m/0001_init.sql": file("A"), "m/0001_again.sql": file("B")}, true, nil},
		{"not starting at 1", fstest.MapFS{"m/0002_x.sql": file("A")}, true, nil},
		{"zero", fstest.MapFS{"m/0000_x.sql": file("A")}, true, nil},
		{"no number", fstest.MapFS{"m/init.sql": file("A")}, true, nil},
		{"empty", fstest.MapFS{"m/README": file("x")}, true, nil},
		{"missing dir", fstest.MapFS{}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			migs, err := Load(tt.fs, "m")
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Load succeeded with %+v", migs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range migs {
				got = append(got, m.Version)
			}
			if len(got) != len(tt.versions) {
				t.Fatalf("versions = %v, want %v", got, tt.versions)
			}
			for i := range got {
				if got[i] != tt.versions[i] {
					t.Fatalf("versions = %v, want %v", got, tt.versions)
				}
			}
			if migs[0].SQL != "A" || migs[0].Name != "0001_init.sql" {
				t.Errorf("first migration = %+v", migs[0])
			}
		})
	}
}
