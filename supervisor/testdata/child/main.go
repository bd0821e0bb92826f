// Command child stands in for the server in the supervisor's tests. With -supervise among its
// arguments it is the parent: it runs supervisor.Run on itself, as the server does. Otherwise it
// prints one line about itself and does what CHILD_PLAN says for this start: a comma-separated
// list indexed by EVENTIDE_RESTARTS (the last entry repeats) of
//
//	exit:N  exit with status N
//	sleep   wait for SIGTERM or SIGINT, then exit 0
//	stop:N  wait for SIGTERM or SIGINT, then exit with status N
//	hang    ignore SIGTERM and SIGINT and wait to be killed
//	kill    kill itself with SIGKILL
//	ready   tell the supervisor it is ready, then as sleep
//	restart tell the supervisor it is ready, ask for a restart, then as sleep
//	ready-exit:N  tell the supervisor it is ready, then exit with status N
//
// A child that inherited listeners prints one "listener NAME ADDR" line for each.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eventide/server/supervisor"
)

func main() {
	if slices.Contains(os.Args[1:], "-supervise") {
		os.Exit(parent())
	}
	restarts := supervisor.RestartsFromEnv(os.Environ())
	plan := strings.Split(os.Getenv("CHILD_PLAN"), ",")
	action := plan[min(restarts, len(plan)-1)]
	// Signal handling is in place before the line that tells the test this child is up.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if action == "hang" {
		signal.Ignore(syscall.SIGTERM, os.Interrupt)
	}
	fmt.Printf("child pid=%d restarts=%d supervise=%s args=%q\n",
		os.Getpid(), restarts, os.Getenv("SUPERVISE"), os.Args[1:])
	in, err := supervisor.FromEnv(os.Environ())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	if l := in.Listener("http"); l != nil {
		fmt.Printf("listener http %s\n", l.Addr())
	}
	say := func(what string, f func() error) {
		if err := f(); err != nil {
			fmt.Fprintf(os.Stderr, "child: %s: %v\n", what, err)
			os.Exit(3)
		}
		fmt.Printf("child %s pid=%d\n", what, os.Getpid())
	}
	switch action {
	case "ready":
		say("ready", in.Ready)
		action = "sleep"
	case "restart":
		say("ready", in.Ready)
		say("restart", in.AskRestart)
		action = "sleep"
	default:
		if code, ok := strings.CutPrefix(action, "ready-exit:"); ok {
			say("ready", in.Ready)
			action = "exit:" + code
		}
	}

	switch {
	case strings.HasPrefix(action, "exit:"):
		code, _ := strconv.Atoi(strings.TrimPrefix(action, "exit:"))
		os.Exit(code)
	case action == "sleep":
		<-ctx.Done()
		fmt.Printf("child stopping on a signal pid=%d\n", os.Getpid())
	case strings.HasPrefix(action, "stop:"):
		code, _ := strconv.Atoi(strings.TrimPrefix(action, "stop:"))
		<-ctx.Done()
		fmt.Println("child stopping on a signal")
		os.Exit(code)
	case action == "hang":
		time.Sleep(time.Hour)
	case action == "kill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour)
	default:
		fmt.Fprintf(os.Stderr, "child: unknown action %q\n", action)
		os.Exit(3)
	}
}

func parent() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := supervisor.Run(ctx, supervisor.Options{
		Args:   os.Args[1:],
		Env:    os.Environ(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err == nil {
		fmt.Println("parent done")
		return 0
	}
	fmt.Fprintln(os.Stderr, err)
	var ee *supervisor.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}
