// pion/turn's example TURN server (examples/turn-server/port-range in
// golang-github-pion-turn.v2-dev), as bench/turn/run runs it beside rallypoint and coturn: the
// same one user, realm and relay port range, bound to loopback only (the example listens on
// every interface, which a benchmark here must not).
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o pion-turn bench/turn/pion/main.go
//	pion-turn -port 3478 -users user=pass -realm example.org
package main

import (
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/pion/turn/v2"
)

func main() {
	port := flag.Int("port", 3478, "Listening port on 127.0.0.1.")
	users := flag.String("users", "", "Users and passwords (user=pass,user=pass).")
	realm := flag.String("realm", "pion.ly", "Realm.")
	flag.Parse()
	if len(*users) == 0 {
		log.Fatalf("'users' is required")
	}

	udpListener, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(*port))
	if err != nil {
		log.Panicf("Failed to create TURN server listener: %s", err)
	}

	usersMap := map[string][]byte{}
	// The example's `(\w+)=(\w+)` would cut a password with a '-' short.
	for _, pair := range strings.Split(*users, ",") {
		if kv := strings.SplitN(pair, "=", 2); len(kv) == 2 {
			usersMap[kv[0]] = turn.GenerateAuthKey(kv[0], *realm, kv[1])
		}
	}

	s, err := turn.NewServer(turn.ServerConfig{
		Realm: *realm,
		AuthHandler: func(username string, realm string, srcAddr net.Addr) ([]byte, bool) {
			if key, ok := usersMap[username]; ok {
				return key, true
			}
			return nil, false
		},
		PacketConnConfigs: []turn.PacketConnConfig{
			{
				PacketConn: udpListener,
				RelayAddressGenerator: &turn.RelayAddressGeneratorPortRange{
					RelayAddress: net.ParseIP("127.0.0.1"),
					Address:      "127.0.0.1",
					MinPort:      50000,
					MaxPort:      59999,
				},
			},
		},
	})
	if err != nil {
		log.Panic(err)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs

	if err = s.Close(); err != nil {
		log.Panic(err)
	}
}
