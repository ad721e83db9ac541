package jid_test

import (
	"testing"

	"kontor.im/kontor/core/jid"
)

var (
	sinkJID    jid.JID
	sinkString string
)

// benchmarkParse reports the cost of parsing s, which must be a valid JID.
func benchmarkParse(b *testing.B, s string) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		j, err := jid.Parse(s)
		if err != nil {
			b.Fatal(err)
		}
		sinkJID = j
	}
}

func BenchmarkParseASCII(b *testing.B)     { benchmarkParse(b, "alice@example.com/phone") }
func BenchmarkParseUppercase(b *testing.B) { benchmarkParse(b, "Alice@Example.COM/phone") }
func BenchmarkParseUnicode(b *testing.B) {
	benchmarkParse(b, "Σωκράτης@Παράδειγμα.example/τηλέφωνο")
}

func BenchmarkString(b *testing.B) {
	j := jid.MustParse("Σωκράτης@Παράδειγμα.example/τηλέφωνο")
	b.ReportAllocs()
	for b.Loop() {
		sinkString = j.String()
	}
}

func BenchmarkAppendTo(b *testing.B) {
	j := jid.MustParse("alice@example.com/phone")
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = j.AppendTo(buf[:0])
	}
}

func BenchmarkWithResource(b *testing.B) {
	j := jid.MustParse("alice@example.com")
	b.ReportAllocs()
	for b.Loop() {
		full, err := j.WithResource("phone")
		if err != nil {
			b.Fatal(err)
		}
		sinkJID = full
	}
}
