package load

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPIDListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pid, err := PIDListening(l.Addr().(*net.TCPAddr).Port)
	if err != nil || pid != os.Getpid() {
		t.Fatalf("PIDListening = %d, %v; want %d", pid, err, os.Getpid())
	}
	l.Close()
	if pid, _ := PIDListening(l.Addr().(*net.TCPAddr).Port); pid != 0 {
		t.Fatalf("closed port still found: %d", pid)
	}
}

func TestProcCPUAndRSS(t *testing.T) {
	before, err := treeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn some CPU: the counter must move by at least a tick.
	end := time.Now().Add(100 * time.Millisecond)
	x := 0
	for time.Now().Before(end) {
		x++
	}
	after, err := treeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < clockTick {
		t.Errorf("CPU went from %v to %v after 100 ms of work (%d)", before, after, x)
	}
	if rss, err := procRSS(os.Getpid()); err != nil || rss < 1<<20 {
		t.Errorf("procRSS = %d, %v", rss, err)
	}
}

func TestTable(t *testing.T) {
	var in bytes.Buffer
	add := func(r Result) {
		b, _ := json.Marshal(r)
		in.Write(append(b, '\n'))
	}
	for i, v := range []float64{1, 3, 2} {
		add(Result{Scenario: "login", Server: "kontor", CPUPerOpMS: v, Ops: int64(i + 1)})
	}
	add(Result{Scenario: "login", Server: "prosody", CPUPerOpMS: 8})
	add(Result{Scenario: "login", Server: "ejabberd", CPUPerOpMS: 4})
	add(Result{Scenario: "chat", Server: "kontor", Lost: 1, Config: &Config{Rate: 100}})
	add(Result{Scenario: "chat", Server: "kontor", Lost: 2, Config: &Config{Rate: 100}})
	var out bytes.Buffer
	if err := Table(&in, &out, []string{"kontor", "prosody", "ejabberd"}, []string{"kontor", "prosody", "ejabberd"}); err != nil {
		t.Fatal(err)
	}
	var login, lost string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "CPU ms per login") {
			login = strings.Join(strings.Fields(l), " ")
		}
		if strings.Contains(l, "messages lost") {
			lost = strings.Join(strings.Fields(l), " ")
		}
	}
	// Median 2, peers 8 and 4: ratio to the best peer 0.5.
	if !strings.HasSuffix(login, "2 8 4 0.50") {
		t.Errorf("login row %q\n%s", login, out.String())
	}
	if !strings.HasSuffix(lost, "3 - - -") {
		t.Errorf("lost row %q (losses are summed)\n%s", lost, out.String())
	}
}

func TestChatBody(t *testing.T) {
	b := chatBody(7)
	at, ok := sentAt(b)
	if !ok || time.Since(at) > time.Second || time.Since(at) < 0 {
		t.Fatalf("sentAt(%q) = %v, %v", b, at, ok)
	}
	for _, bad := range []string{"", "load", "load x 1", "hello 1 2"} {
		if _, ok := sentAt(bad); ok {
			t.Errorf("sentAt(%q) accepted", bad)
		}
	}
}
