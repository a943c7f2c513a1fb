// lumberjack_receiver is the receiving end of the Beats protocol (lumberjack v2) in
// tests: the server of github.com/elastic/go-lumber, the library Logstash's Go-side
// tooling and Filebeat's own tests use. It accepts TLS connections whose client
// certificate must verify against -client-ca, writes every event it receives as one
// JSON line to -out (appended and fsynced per batch) and only then ACKs the batch, so
// a sender that saw the ACK can rely on the line being on disk.
//
//	lumberjack_receiver -listen 127.0.0.1:5044 -cert server.crt -key server.key \
//	    -client-ca ca.crt -out events.jsonl [-ready addr.txt]
//
// -listen may use port 0; -ready then receives the address actually bound. -no-tls
// serves plain TCP, for tests of the transport alone.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/elastic/go-lumber/lj"
	"github.com/elastic/go-lumber/server"
)

// rawDecoder keeps each event as the sender encoded it (compacted to one line), so
// the output shows exactly what went over the wire, number formats included.
func rawDecoder(data []byte, v interface{}) error {
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return err
	}
	ptr, ok := v.(*interface{})
	if !ok {
		return errors.New("unexpected decode target")
	}
	*ptr = json.RawMessage(buf.Bytes())
	return nil
}

func tlsConfig(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	pem, err := os.ReadFile(clientCA)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client CA %s: no certificate found", clientCA)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func writeBatch(out *os.File, batch *lj.Batch) error {
	var buf bytes.Buffer
	for _, event := range batch.Events {
		raw, ok := event.(json.RawMessage)
		if !ok {
			encoded, err := json.Marshal(event)
			if err != nil {
				return err
			}
			raw = encoded
		}
		buf.Write(raw)
		buf.WriteByte('\n')
	}
	if _, err := out.Write(buf.Bytes()); err != nil {
		return err
	}
	return out.Sync()
}

// writeReady publishes the bound address atomically: a reader never sees half of it.
func writeReady(path, addr string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:5044", "address to listen on (port 0: any free port)")
	certFile := flag.String("cert", "", "server certificate (PEM)")
	keyFile := flag.String("key", "", "server private key (PEM)")
	clientCA := flag.String("client-ca", "", "CA certificate(s) that client certificates must verify against (PEM)")
	outFile := flag.String("out", "", "file to append received events to, one JSON object a line")
	ready := flag.String("ready", "", "file to write the bound address to once listening")
	noTLS := flag.Bool("no-tls", false, "serve plain TCP (transport tests only)")
	timeout := flag.Duration("timeout", 30*time.Second, "network timeout while reading a batch")
	flag.Parse()

	if *outFile == "" {
		log.Fatal("-out is required")
	}
	if !*noTLS && (*certFile == "" || *keyFile == "" || *clientCA == "") {
		log.Fatal("-cert, -key and -client-ca are required (or -no-tls)")
	}
	out, err := os.OpenFile(*outFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatal(err)
	}

	var listener net.Listener
	if *noTLS {
		listener, err = net.Listen("tcp", *listen)
	} else {
		var config *tls.Config
		if config, err = tlsConfig(*certFile, *keyFile, *clientCA); err != nil {
			log.Fatal(err)
		}
		listener, err = tls.Listen("tcp", *listen, config)
	}
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.NewWithListener(listener,
		server.V1(false), server.V2(true), server.JSONDecoder(rawDecoder), server.Timeout(*timeout))
	if err != nil {
		log.Fatal(err)
	}
	addr := listener.Addr().String()
	log.Printf("listening on %s (tls=%v), writing to %s", addr, !*noTLS, filepath.Clean(*outFile))
	if *ready != "" {
		if err := writeReady(*ready, addr); err != nil {
			log.Fatal(err)
		}
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	batches := srv.ReceiveChan()
	for {
		select {
		case sig := <-stop:
			log.Printf("%v: stopping", sig)
			_ = srv.Close()
			_ = out.Close()
			return
		case batch, open := <-batches:
			if !open {
				return
			}
			// No ACK unless the events are durably written: the sender then resends.
			if err := writeBatch(out, batch); err != nil {
				log.Printf("writing batch: %v (not acknowledged)", err)
				continue
			}
			batch.ACK()
		}
	}
}
