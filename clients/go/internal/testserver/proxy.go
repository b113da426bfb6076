package testserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Proxy is tests/support/flaky_proxy.py running in front of a server: a TCP proxy that loses
// the answers to the first calls on purpose, after the server has done the work (see that
// file).
type Proxy struct {
	// Addr is host:port to connect to instead of the server's.
	Addr string
	// Lines receives what the proxy prints after its first line: one "dropped response on
	// stream N" per lost answer.
	Lines <-chan string

	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// StartProxy starts a proxy to target (host:port) that loses the answers to the first drops
// calls.
func StartProxy(target string, drops int) (*Proxy, error) {
	root, ok := repositoryRoot()
	if !ok {
		return nil, errors.New("testserver: cannot locate the repository")
	}
	// Any Python 3.11+ runs it (standard library only); the checkout's virtualenv has one.
	python := filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		python = "python3"
	}
	cmd := exec.Command(python, filepath.Join(root, "tests", "support", "flaky_proxy.py"),
		"--target", target, "--drop-responses", fmt.Sprint(drops))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // closing it stops the proxy
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the flaky proxy: %w", err)
	}
	lines := make(chan string, 100)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			lines <- strings.TrimSpace(scanner.Text())
		}
		close(lines)
	}()
	p := &Proxy{Lines: lines, cmd: cmd, stdin: stdin}
	select {
	case first, ok := <-lines:
		if addr, found := strings.CutPrefix(first, "flaky_proxy listening on "); ok && found {
			p.Addr = addr
			return p, nil
		}
		_ = p.Close()
		return nil, fmt.Errorf("the flaky proxy printed %q instead of its address", first)
	case <-time.After(startTimeout):
		_ = p.Close()
		return nil, fmt.Errorf("the flaky proxy did not start within %s", startTimeout)
	}
}

// Close stops the proxy and waits for it to exit.
func (p *Proxy) Close() error {
	_ = p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		return <-done
	}
}
