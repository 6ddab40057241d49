package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"depot"
	"depot/internal/httpx"
)

// SFTP entrance (docs/sftp.md). The web process may also listen for SSH
// connections that offer only the "sftp" subsystem. It stores nothing, like
// the HTTP entrances: a user signs in with an SSH public key registered to
// their account or with a personal access token as the password, both
// checked by services; every file operation is an internal request made
// with that credential, and writes go through the same upload admission
// and the same memory-only chunks as tus (sftp_write.go).

// SFTPConfig configures the SFTP listener.
type SFTPConfig struct {
	// HostKeys identify the server (at least one).
	HostKeys []ssh.Signer
	// MaxConnections bounds the SSH connections served at once; one more
	// is closed at once. Default 64.
	MaxConnections int
	// IdleTimeout closes a connection that sends nothing for this long.
	// Default 10 minutes.
	IdleTimeout time.Duration
}

// sftpHandshakeTimeout bounds the SSH handshake, sign-in included.
const sftpHandshakeTimeout = 30 * time.Second

// sftpMaxSessionsPerConn bounds the session channels (each an SFTP server)
// one SSH connection may hold open.
const sftpMaxSessionsPerConn = 4

// Extensions of ssh.Permissions that carry a connection's credential from
// the authentication callbacks to the session.
const (
	permSSHKey = "depot-ssh-key" // authorized_keys form, proven by the client
	permToken  = "depot-token"   // a personal access token given as password
	permUser   = "depot-user"
)

// ServeSFTP serves SFTP on ln until ctx ends, then closes every connection.
func (s *Server) ServeSFTP(ctx context.Context, ln net.Listener, cfg SFTPConfig) error {
	if len(cfg.HostKeys) == 0 {
		return errors.New("sftp: no host key")
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 64
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	conf := s.sshServerConfig()
	for _, k := range cfg.HostKeys {
		conf.AddHostKey(k)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-ctx.Done(); ln.Close() }()
	slots := make(chan struct{}, cfg.MaxConnections)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("sftp: accept: %w", err)
		}
		select {
		case slots <- struct{}{}:
		default:
			s.cfg.Log.Warn("sftp connection refused: too many connections", "max", cfg.MaxConnections)
			nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s.serveSSH(ctx, nc, conf, cfg.IdleTimeout)
		}()
	}
}

// sshServerConfig accepts a public key only once the client proved it
// holds the private key (VerifiedPublicKeyCallback) and services knows it,
// or a password that services accepts as a personal access token. The SSH
// user name must be the depot user's.
func (s *Server) sshServerConfig() *ssh.ServerConfig {
	return &ssh.ServerConfig{
		MaxAuthTries:  6,
		ServerVersion: "SSH-2.0-depot",
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			// Not yet proven: services is asked only after the signature.
			return &ssh.Permissions{Extensions: map[string]string{permSSHKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))}}, nil
		},
		VerifiedPublicKeyCallback: func(meta ssh.ConnMetadata, _ ssh.PublicKey, perm *ssh.Permissions, _ string) (*ssh.Permissions, error) {
			key := perm.Extensions[permSSHKey]
			return s.sshSignIn(meta, depot.Caller{SSHKey: key}, map[string]string{permSSHKey: key})
		},
		PasswordCallback: func(meta ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
			tok := string(password)
			return s.sshSignIn(meta, depot.Caller{Token: tok}, map[string]string{permToken: tok})
		},
		// Some clients (FileZilla, WinSCP) ask for a password this way.
		KeyboardInteractiveCallback: func(meta ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			answers, err := ask("", "depot: sign in with a personal access token", []string{"Token: "}, []bool{false})
			if err != nil || len(answers) != 1 {
				return nil, errors.New("sign-in refused")
			}
			return s.sshSignIn(meta, depot.Caller{Token: answers[0]}, map[string]string{permToken: answers[0]})
		},
	}
}

// sshSignIn asks services who c is; the SSH user name must be theirs.
func (s *Server) sshSignIn(meta ssh.ConnMetadata, c depot.Caller, ext map[string]string) (*ssh.Permissions, error) {
	c.RequestID, c.ClientIP, c.UserAgent = httpx.NewID(), hostOf(meta.RemoteAddr()), sshAgent(meta)
	ctx, cancel := context.WithTimeout(context.Background(), sftpHandshakeTimeout)
	defer cancel()
	p, err := s.cfg.Backend.Authorize(ctx, c, "", "")
	if err != nil {
		s.cfg.Log.Info("sftp sign-in refused", "code", depot.ErrorCode(err), "request_id", c.RequestID)
		return nil, errors.New("sign-in refused")
	}
	if p.User != meta.User() {
		s.cfg.Log.Info("sftp sign-in refused: the SSH user name is not the credential's user", "request_id", c.RequestID)
		return nil, errors.New("sign-in refused")
	}
	ext[permUser] = p.User
	return &ssh.Permissions{Extensions: ext}, nil
}

// serveSSH runs one SSH connection: its channels, each a session that may
// start only the sftp subsystem.
func (s *Server) serveSSH(ctx context.Context, nc net.Conn, conf *ssh.ServerConfig, idle time.Duration) {
	defer nc.Close()
	ic := &idleConn{Conn: nc, idle: idle}
	ic.SetDeadline(time.Now().Add(sftpHandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(ic, conf)
	if err != nil {
		return
	}
	ic.SetDeadline(time.Time{})
	ic.started.Store(true)
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	ext := sc.Permissions.Extensions
	base := depot.Caller{SSHKey: ext[permSSHKey], Token: ext[permToken], ClientIP: hostOf(sc.RemoteAddr()), UserAgent: sshAgent(sc)}
	if base.Token != "" {
		base.SSHKey = "" // signed in with the password
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	sessions := make(chan struct{}, sftpMaxSessionsPerConn)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		select {
		case sessions <- struct{}{}:
		default:
			nch.Reject(ssh.ResourceShortage, "too many sessions on one connection")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sessions }()
			s.serveSession(ctx, ch, creqs, base, ext[permUser])
		}()
	}
}

// serveSession waits for a "subsystem sftp" request (refusing shells,
// commands and everything else) and serves SFTP on the channel.
func (s *Server) serveSession(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request, base depot.Caller, user string) {
	defer ch.Close()
	for req := range reqs {
		ok := req.Type == "subsystem" && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp"
		command := req.Type == "exec" || req.Type == "shell"
		if req.WantReply {
			req.Reply(ok || command, nil) // a command is told why it fails
		}
		if !ok {
			if command {
				fmt.Fprintln(ch.Stderr(), "depot: this server offers SFTP only")
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{1}))
				return
			}
			continue
		}
		go ssh.DiscardRequests(reqs)
		fs := s.newSFTPFS(ctx, base, user)
		srv := sftp.NewRequestServer(ch, fs.handlers())
		err := srv.Serve()
		status := uint32(0) // the client ended the session (scp checks this)
		if err != nil && !errors.Is(err, io.EOF) {
			status = 1
		}
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		srv.Close() // closes the channel
		return
	}
}

// idleConn closes a connection that reads nothing for idle once its
// handshake is over (which has its own deadline).
type idleConn struct {
	net.Conn
	idle    time.Duration
	started atomic.Bool
}

func (c *idleConn) Read(p []byte) (int, error) {
	if c.started.Load() {
		c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Read(p)
}

func hostOf(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

func sshAgent(meta ssh.ConnMetadata) string { return string(meta.ClientVersion()) }
