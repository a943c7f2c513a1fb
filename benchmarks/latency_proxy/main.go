// latency_proxy forwards TCP connections and delays every chunk by a fixed one-way
// latency in each direction, without limiting throughput: a request/response pays
// two delays, a pipelined batch pays them once. It stands in for a LAN hop
// (e.g. 100us each way = 0.2 ms round trip) where tc netem is unavailable.
//
//	latency_proxy -listen 127.0.0.1:21211 -target 127.0.0.1:11211 -delay 100us
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"runtime"
	"time"
)

type chunk struct {
	data []byte
	due  time.Time
}

// waitUntil returns at t. Go's timers are too coarse for sub-millisecond delays on many
// kernels (a 100us sleep took ~1ms here), so the last stretch is a yielding spin.
func waitUntil(t time.Time) {
	if wait := time.Until(t); wait > 2*time.Millisecond {
		time.Sleep(wait - time.Millisecond)
	}
	for time.Now().Before(t) {
		runtime.Gosched()
	}
}

func pipe(dst, src net.Conn, delay time.Duration) {
	queue := make(chan chunk, 4096)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 64*1024)
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{buf[:n], time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		waitUntil(c.due)
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	if tcp, ok := dst.(*net.TCPConn); ok {
		tcp.CloseWrite()
	}
	io.Copy(io.Discard, src)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:21211", "address to listen on")
	target := flag.String("target", "127.0.0.1:11211", "address to forward to")
	delay := flag.Duration("delay", 100*time.Microsecond, "one-way delay")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		client, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			server, err := net.Dial("tcp", *target)
			if err != nil {
				client.Close()
				return
			}
			client.(*net.TCPConn).SetNoDelay(true)
			server.(*net.TCPConn).SetNoDelay(true)
			done := make(chan struct{}, 2)
			go func() { pipe(server, client, *delay); done <- struct{}{} }()
			go func() { pipe(client, server, *delay); done <- struct{}{} }()
			<-done
			<-done
			client.Close()
			server.Close()
		}()
	}
}
