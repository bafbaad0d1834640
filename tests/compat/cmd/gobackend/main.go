// Command gobackend is the original proof of concept's backend example,
// re-created for wire-compatibility tests only. It dials -router and
// serves GET /foo ("bar" after a millisecond) and /echo (the request
// body, streamed back).
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"time"

	"ptth"
)

func main() {
	router := flag.String("router", "localhost:8887", "the router's tunnel address")
	flag.Parse()

	http.HandleFunc("/foo", func(w http.ResponseWriter, r *http.Request) {
		log.Println("handling:", r.URL.Path)
		time.Sleep(time.Millisecond)
		io.WriteString(w, "bar")
	})
	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	log.Fatal(ptth.CreateTunnelAndServe(*router, nil))
}
