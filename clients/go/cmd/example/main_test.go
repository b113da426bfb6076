package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/taskq/taskq/clients/go/internal/testserver"
)

// TestMain runs main itself when the test re-executes its own binary as the example program.
func TestMain(m *testing.M) {
	if os.Getenv("TASKQ_RUN_EXAMPLE") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runExample runs the program as written, against addr, and returns its output.
func runExample(t *testing.T, addr string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-addr", addr)
	cmd.Env = append(os.Environ(), "TASKQ_RUN_EXAMPLE=1")
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the example failed: %v\n%s", err, output.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the example did not finish in 30 s:\n%s", output.String())
	}
	return output.String()
}

func TestExampleRunsAgainstARealServer(t *testing.T) {
	server, err := testserver.Start()
	if errors.Is(err, testserver.ErrNoServer) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := server.Stop(); err != nil {
			t.Error(err)
		}
	}()
	// Twice: the queues exist the second time.
	for run := 1; run <= 2; run++ {
		output := runExample(t, server.Addr)
		for _, want := range []string{
			"email to ada@example.com\n", "email to alan@example.com\n",
			"report q3, leased by tag\n", "report q4, from the pull loop\n",
		} {
			if !strings.Contains(output, want) {
				t.Errorf("run %d: the output lacks %q:\n%s", run, want, output)
			}
		}
	}
}

// TestREADMEShowsTheExample keeps the README's example the program that the test above runs.
func TestREADMEShowsTheExample(t *testing.T) {
	program, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The README shows the program from its package clause on.
	_, body, found := strings.Cut(string(program), "package main\n")
	if !found {
		t.Fatal("main.go has no package clause")
	}
	block := fmt.Sprintf("```go\npackage main\n%s```", body)
	if !strings.Contains(string(readme), block) {
		t.Errorf("README.md does not show cmd/example/main.go as it is (from `package main`); copy it again")
	}
}
