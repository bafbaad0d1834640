// Package ptth re-creates the original Go proof of concept of the
// ReverseHTTP router, for wire-compatibility tests only: tests/test_compat.c
// runs its router in front of our backend and its backend behind our
// router. It is not part of the product and follows the original's
// behaviour, quirks included, rather than ours.
//
// A Router accepts TCP connections on its tunnel port and speaks HTTP/2 as
// the client on each of them (prior knowledge, no TLS); a backend dials
// that port and serves HTTP/2 on the connection it opened.
package ptth

import (
	"errors"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"sync"

	"golang.org/x/net/http2"
)

// Router keeps a pool of tunnels and forwards each HTTP request it serves
// down a randomly chosen one. The zero value is ready to use.
type Router struct {
	mu   sync.Mutex
	pool []*http2.ClientConn
}

// ListenAndAcceptTunnels listens on addr and adds every TCP connection
// accepted there to the pool of tunnels. It returns only on error.
func (r *Router) ListenAndAcceptTunnels(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return r.AcceptTunnels(ln)
}

// AcceptTunnels is ListenAndAcceptTunnels on a listener the caller opened.
func (r *Router) AcceptTunnels(ln net.Listener) error {
	defer ln.Close()
	t := &http2.Transport{AllowHTTP: true}
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		cc, err := t.NewClientConn(conn)
		if err != nil {
			log.Println("Error starting tunnel:", err)
			conn.Close()
			continue
		}
		r.mu.Lock()
		r.pool = append(r.pool, cc)
		r.mu.Unlock()
		log.Println("Tunnel added:", conn.RemoteAddr())
	}
}

// ServeHTTP forwards the request down a random live tunnel and copies the
// response back. A tunnel whose round trip fails is dropped; a request
// without a body then tries another one. With no tunnel left it answers
// 503 "Server at capacity".
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	out := req.Clone(req.Context())
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.URL.Host = req.Host
	for {
		cc := r.pick()
		if cc == nil {
			http.Error(w, "Server at capacity", http.StatusServiceUnavailable)
			return
		}
		res, err := cc.RoundTrip(out)
		if err != nil {
			log.Println("Tunnel dropped:", err)
			r.drop(cc)
			if req.ContentLength == 0 {
				continue
			}
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		io.Copy(w, res.Body)
		return
	}
}

// pick returns a random tunnel that is not closed, dropping closed ones,
// or nil when the pool is empty.
func (r *Router) pick() *http2.ClientConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.pool) > 0 {
		i := rand.Intn(len(r.pool))
		cc := r.pool[i]
		if !cc.State().Closed {
			return cc
		}
		r.pool = append(r.pool[:i], r.pool[i+1:]...)
	}
	return nil
}

// drop removes cc from the pool and closes it.
func (r *Router) drop(cc *http2.ClientConn) {
	r.mu.Lock()
	for i, c := range r.pool {
		if c == cc {
			r.pool = append(r.pool[:i], r.pool[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
	cc.Close()
}

// CreateTunnelAndServe dials the router's tunnel port at addr and serves
// HTTP/2 requests from it with handler (http.DefaultServeMux when nil)
// until the connection ends.
func CreateTunnelAndServe(addr string, handler http.Handler) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	(&http2.Server{}).ServeConn(conn, &http2.ServeConnOpts{Handler: handler})
	return errors.New("ptth: tunnel closed")
}
