// Command kontor-load is an XMPP load generator: it drives an XMPP server
// (Kontor, Prosody, ejabberd) through the protocol and prints one JSON line
// per run, with the server's and the database's CPU time per operation read
// from /proc. See package kontor.im/kontor/cmd/kontor-load/load for the
// scenarios, and compare.sh here for the side-by-side comparison.
//
//	kontor-load -scenario register -users 200 -addr 127.0.0.1:5222
//	kontor-load -scenario chat -pairs 10 -rate 100 -duration 20s -server-port 5222 -db-port 5432
//	kontor-load -scenario muc -occupants 500 -messages 50 -db-port 5432
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"kontor.im/kontor/cmd/kontor-load/load"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kontor-load:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var cfg load.Config
	fs := flag.NewFlagSet("kontor-load", flag.ContinueOnError)
	fs.StringVar(&cfg.Scenario, "scenario", "login", "register, login, idle, chat, mam or muc")
	fs.StringVar(&cfg.Server, "label", "", "the server's name in the output")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:5222", "the server's STARTTLS listener (loopback only)")
	fs.StringVar(&cfg.Domain, "domain", "localhost", "the XMPP domain")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "load", "accounts are PREFIX0, PREFIX1, ...")
	fs.StringVar(&cfg.Password, "password", "load-password-1", "every account's password")
	fs.IntVar(&cfg.Users, "users", 100, "login, idle, register: accounts")
	fs.IntVar(&cfg.Concurrency, "concurrency", 10, "logins in flight at once")
	fs.IntVar(&cfg.Pairs, "pairs", 10, "chat: sender/receiver pairs")
	fs.Float64Var(&cfg.Rate, "rate", 0, "chat: messages per second in total; 0: as fast as -window allows")
	fs.BoolVar(&cfg.SM, "sm", false, "chat: enable stream management (XEP-0198) on every client, with an ack request after each message")
	fs.IntVar(&cfg.Window, "window", 16, "chat: messages in flight per pair")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "chat, mam: how long to measure")
	fs.IntVar(&cfg.Seed, "seed", 500, "mam: messages put in the archive before paging")
	fs.IntVar(&cfg.Page, "page", 50, "mam: messages per page")
	fs.DurationVar(&cfg.Quiet, "quiet", 30*time.Second, "before measuring, wait at most this long until the server and database are idle (under 5% of a core), so that an earlier run's leftover work is not counted; 0: do not wait")
	fs.DurationVar(&cfg.Settle, "settle", time.Second, "wait inside the CPU window after the load (deferred work such as batched writes is counted)")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per network step, and the longest wait for messages in flight")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's process id (default: the process listening on -server-port)")
	serverPort := fs.Int("server-port", 0, "find the server's pid by its listening port (default: -addr's port)")
	fs.IntVar(&cfg.DBPID, "db-pid", 0, "the database's main process id (its children count too)")
	dbPort := fs.Int("db-port", 0, "find the database's pid by its listening port")
	load.MUCFlags(fs, &cfg)
	table := fs.String("table", "", "print the comparison table of a file of result lines instead of running (- for standard input)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *table != "" {
		in := os.Stdin
		if *table != "-" {
			f, err := os.Open(*table)
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		peers := []string{"kontor", "prosody", "ejabberd"}
		return load.Table(in, os.Stdout, []string{"kontor", "prosody", "ejabberd", "kontor-nopolicy"}, peers)
	}
	if cfg.ServerPID == 0 {
		port := *serverPort
		if port == 0 {
			_, p, err := net.SplitHostPort(cfg.Addr)
			if err != nil {
				return err
			}
			port, _ = strconv.Atoi(p)
		}
		pid, err := load.PIDListening(port)
		if err != nil {
			return err
		}
		cfg.ServerPID = pid
	}
	if cfg.DBPID == 0 && *dbPort != 0 {
		pid, err := load.PIDListening(*dbPort)
		if err != nil {
			return err
		}
		if pid == 0 {
			return fmt.Errorf("no process listens on port %d", *dbPort)
		}
		cfg.DBPID = pid
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := load.Run(ctx, &cfg)
	if r != nil {
		b, jerr := json.Marshal(r)
		if jerr != nil {
			return jerr
		}
		fmt.Println(string(b))
	}
	return err
}
