// Package testserver runs the real taskq server for the Go client's tests: `$TASKQ_BIN serve`
// on a free port with a temporary data directory.
package testserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds the wait for "taskq listening on HOST:PORT".
const startTimeout = 30 * time.Second

// stopTimeout bounds the wait for the server to exit after SIGTERM.
const stopTimeout = 20 * time.Second

// ErrNoServer is returned by Binary when TASKQ_BIN is unset and the checkout's virtualenv
// has no taskq command: the tests that need a server are skipped.
var ErrNoServer = errors.New("no taskq server binary: set TASKQ_BIN or run `make install` at the repository root")

// Binary is the taskq command to run: $TASKQ_BIN, else the checkout's .venv/bin/taskq.
func Binary() (string, error) {
	if bin := os.Getenv("TASKQ_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("TASKQ_BIN=%s: %w", bin, err)
		}
		return bin, nil
	}
	root, ok := repositoryRoot()
	if !ok {
		return "", ErrNoServer
	}
	bin := filepath.Join(root, ".venv", "bin", "taskq")
	if _, err := os.Stat(bin); err != nil {
		return "", ErrNoServer
	}
	return bin, nil
}

// repositoryRoot is the checkout this file is in.
func repositoryRoot() (string, bool) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", false
	}
	// clients/go/internal/testserver/testserver.go → the repository root.
	return filepath.Join(filepath.Dir(file), "..", "..", "..", ".."), true
}

// Server is a running taskq server.
type Server struct {
	// Addr is host:port the server listens on.
	Addr string

	bin     string
	env     []string // added to the environment: KEY=value
	dataDir string
	ownsDir bool
	cmd     *exec.Cmd
	exited  chan struct{}
	output  *lockedBuffer
}

// Start runs a server on a free port of 127.0.0.1 with a new temporary data directory.
func Start() (*Server, error) {
	return StartWithEnv()
}

// StartWithEnv is Start with settings in the server's environment (KEY=value), e.g.
// TASKQ_TLS_CERT_FILE=server.pem.
func StartWithEnv(env ...string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "taskq-go-test-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, env: env, dataDir: dir, ownsDir: true}
	if err := s.start("127.0.0.1:0"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) start(listen string) error {
	s.output = &lockedBuffer{}
	cmd := exec.Command(s.bin, "serve", "--listen", listen, "--data-dir", s.dataDir, "--durability", "nosync",
		"--grace-period-seconds", "5")
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stderr = s.output
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	addresses := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			line := lines.Text()
			s.output.Write([]byte(line + "\n"))
			if addr, ok := strings.CutPrefix(line, "taskq listening on "); ok {
				select {
				case addresses <- strings.TrimSpace(addr):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(s.exited)
	}()
	select {
	case s.Addr = <-addresses:
		return nil
	case <-s.exited:
		return fmt.Errorf("the taskq server exited at start (%s):\n%s", cmd.ProcessState, s.output)
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("the taskq server did not start within %s:\n%s", startTimeout, s.output)
	}
}

// Stop sends SIGTERM and waits for the server to exit; an error if it does not exit with
// status 0 in time. The data directory is removed.
func (s *Server) Stop() error {
	err := s.terminate()
	if s.ownsDir {
		_ = os.RemoveAll(s.dataDir)
	}
	return err
}

func (s *Server) terminate() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("the taskq server did not exit within %s of SIGTERM:\n%s", stopTimeout, s.output)
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("the taskq server exited with status %d after SIGTERM:\n%s", code, s.output)
	}
	return nil
}

// Restart stops the server with SIGTERM and starts it again on the same address and data
// directory, waiting pause in between.
func (s *Server) Restart(pause time.Duration) error {
	if err := s.Down(); err != nil {
		return err
	}
	time.Sleep(pause)
	return s.Up()
}

// Down stops the server with SIGTERM, keeping its address and data directory for [Server.Up].
func (s *Server) Down() error {
	return s.terminate()
}

// Up starts the server again after [Server.Down], on the same address and data directory.
func (s *Server) Up() error {
	addr := s.Addr
	var err error
	for range 50 { // the port may take a moment to be free again
		if err = s.start(addr); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Output is what the server printed so far.
func (s *Server) Output() string { return s.output.String() }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
