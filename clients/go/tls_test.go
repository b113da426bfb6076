package taskq_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	taskq "github.com/taskq/taskq/clients/go"
	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
	"github.com/taskq/taskq/clients/go/internal/testcerts"
	"github.com/taskq/taskq/clients/go/internal/testserver"
)

// TestTLS runs the client against a real taskq server that requires TLS with client
// certificates (mTLS), set up through TASKQ_TLS_CERT_FILE, TASKQ_TLS_KEY_FILE and
// TASKQ_TLS_CLIENT_CA_FILE. Its certificate is for localhost, 127.0.0.1 and taskq.internal.
func TestTLS(t *testing.T) {
	needServer(t)
	files, err := testcerts.Write(t.TempDir(), "localhost", "127.0.0.1", "taskq.internal")
	if err != nil {
		t.Fatal(err)
	}
	tlsServer, err := testserver.StartWithEnv("TASKQ_TLS_CERT_FILE="+files.ServerCert,
		"TASKQ_TLS_KEY_FILE="+files.ServerKey, "TASKQ_TLS_CLIENT_CA_FILE="+files.CA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tlsServer.Stop(); err != nil {
			t.Error(err)
		}
	})
	port := tlsServer.Addr[strings.LastIndex(tlsServer.Addr, ":")+1:]
	mtls := taskq.TLSSettings{CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey}
	dialTLS := func(t *testing.T, address string, opts ...taskq.Option) *taskq.Client {
		t.Helper()
		client, err := taskq.Dial(testContext(t), address, opts...)
		if err != nil {
			t.Fatalf("Dial(%s): %v", address, err)
		}
		t.Cleanup(func() { _ = client.Close() })
		return client
	}
	// refused asserts that a call fails with UNAVAILABLE (a refused handshake) whose message
	// mentions want.
	refused := func(t *testing.T, client *taskq.Client, want string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(testContext(t), 10*time.Second)
		defer cancel()
		_, err := client.GetQueue(ctx, "anything")
		t.Logf("refused: %v", err)
		if taskq.CodeOf(err) != codes.Unavailable || !strings.Contains(err.Error(), want) {
			t.Errorf("GetQueue = %v, want UNAVAILABLE mentioning %q", err, want)
		}
	}

	t.Run("unary calls over mTLS", func(t *testing.T) {
		client := dialTLS(t, "127.0.0.1:"+port, taskq.WithTLS(mtls))
		ctx := testContext(t)
		queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PullQueue})
		if _, err := client.CreateTask(ctx, queue, taskq.TaskSpec{Payload: []byte("hello")}); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		tasks, err := client.LeaseTasks(ctx, queue, taskq.LeaseOptions{Duration: time.Minute})
		if err != nil || len(tasks) != 1 || string(tasks[0].GetPayload()) != "hello" {
			t.Fatalf("LeaseTasks = %v, %v; want the task", tasks, err)
		}
		if err := client.Ack(ctx, tasks[0]); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		if s := stats(t, client, queue); s.GetTasksCount() != 0 {
			t.Errorf("stats after the ack = %v, want no task", s)
		}
	})

	t.Run("the push worker streams tasks over mTLS to an https:// address", func(t *testing.T) {
		client := dialTLS(t, "https://localhost:"+port, taskq.WithTLS(mtls))
		queue := newQueue(t, client, taskq.QueueConfig{Type: taskq.PushQueue})
		for range 5 {
			if _, err := client.CreateTask(testContext(t), queue, taskq.TaskSpec{Payload: []byte("x")}); err != nil {
				t.Fatalf("CreateTask: %v", err)
			}
		}
		var handled atomic.Int32
		worker := taskq.NewWorker(client, queue, func(ctx context.Context, task *taskqv1.Task) error {
			handled.Add(1)
			return nil
		}, taskq.WorkerOptions{Concurrency: 2, Logger: logger()})
		stop := runWorker(t, worker.Run)
		eventually(t, 10*time.Second, "5 tasks handled and acknowledged", func() bool {
			return handled.Load() == 5 && stats(t, client, queue).GetTasksCount() == 0
		})
		if err := stop(); err != nil {
			t.Errorf("Run = %v", err)
		}
	})

	t.Run("a dns:/// address with the CA file", func(t *testing.T) {
		client := dialTLS(t, "dns:///localhost:"+port, taskq.WithTLS(mtls))
		if _, err := client.GetQueue(testContext(t), "missing"); !errors.Is(err, taskq.ErrQueueNotFound) {
			t.Errorf("GetQueue = %v, want ErrQueueNotFound from the server", err)
		}
	})

	t.Run("a client without a certificate is refused", func(t *testing.T) {
		client := dialTLS(t, "127.0.0.1:"+port, taskq.WithTLS(taskq.TLSSettings{CAFile: files.CA}), taskq.WithoutRetry())
		refused(t, client, "")
	})

	t.Run("a plain-text client is refused", func(t *testing.T) {
		refused(t, dialTLS(t, "127.0.0.1:"+port, taskq.WithoutRetry()), "")
	})

	t.Run("https:// without a CA file trusts only the system's CAs", func(t *testing.T) {
		refused(t, dialTLS(t, "https://127.0.0.1:"+port, taskq.WithoutRetry()), "certificate")
	})

	t.Run("the server name is checked instead of the address's host", func(t *testing.T) {
		named := mtls
		named.ServerName = "taskq.internal"
		client := dialTLS(t, "127.0.0.1:"+port, taskq.WithTLS(named))
		if _, err := client.GetQueue(testContext(t), "missing"); !errors.Is(err, taskq.ErrQueueNotFound) {
			t.Errorf("GetQueue with server name taskq.internal = %v, want ErrQueueNotFound from the server", err)
		}
		named.ServerName = "elsewhere.example"
		refused(t, dialTLS(t, "127.0.0.1:"+port, taskq.WithTLS(named), taskq.WithoutRetry()), "elsewhere.example")
	})
}

func TestUnusableTLSFilesAreNamedByDial(t *testing.T) {
	dir := t.TempDir()
	files, err := testcerts.Write(dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("nothing here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		settings taskq.TLSSettings
		want     string
	}{
		{taskq.TLSSettings{CAFile: missing}, "cannot read CAFile " + missing + ": no such file or directory"},
		{taskq.TLSSettings{CAFile: files.ClientKey}, "CAFile " + files.ClientKey + " holds no PEM certificate"},
		{taskq.TLSSettings{CertFile: files.ClientCert}, "CertFile and KeyFile go together"},
		{taskq.TLSSettings{KeyFile: files.ClientKey}, "CertFile and KeyFile go together"},
		{taskq.TLSSettings{CertFile: files.ClientCert, KeyFile: empty}, "KeyFile " + empty + " holds no PEM private key"},
		{taskq.TLSSettings{CertFile: files.ClientCert, KeyFile: files.ServerKey}, "are not a certificate and its key"},
	} {
		client, err := taskq.Dial(t.Context(), "127.0.0.1:50051", taskq.WithTLS(c.settings))
		if client != nil {
			_ = client.Close()
		}
		if !errors.Is(err, taskq.ErrInvalidTLSSettings) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Dial with %+v = %v, want ErrInvalidTLSSettings saying %q", c.settings, err, c.want)
		}
	}
}
