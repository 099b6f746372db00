// tlogcheck checks a reprover evidence log with Go's golang.org/x/mod/sumdb/tlog and note,
// an implementation reprover shares no code with.
//
//	tlogcheck log LOGDIR VKEY [OLD_CHECKPOINT]   checkpoint signature, every tile (authenticated
//	                                             against the signed root), every entry's hash,
//	                                             an inclusion proof per entry, consistency
//	tlogcheck proof PROOF.json FILE VKEY         a reprover proof file, offline
//	tlogcheck sign NAME TEXT                     prints a Go-made vkey and a note Go signed
//
// Build offline with Debian's golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o tlogcheck tlogcheck.go
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type tiles struct{ dir string }

func (t tiles) Height() int { return 8 }

// path maps Go's "tile/8/L/N[.p/W]" and "tile/8/data/N" to C2SP's "tile/L/N" and "tile/entries/N".
func path(t tlog.Tile) string {
	p := t.Path()
	p = strings.Replace(p, "tile/8/data/", "tile/entries/", 1)
	return strings.Replace(p, "tile/8/", "tile/", 1)
}

func (t tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, x := range ts {
		data, err := os.ReadFile(filepath.Join(t.dir, path(x)))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (t tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogcheck: "+format+"\n", args...)
	os.Exit(1)
}

func open(msg []byte, vkey string) tlog.Tree {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[0] != v.Name() || lines[3] != "" {
		fail("checkpoint body %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || strconv.FormatInt(size, 10) != lines[1] {
		fail("checkpoint size %q", lines[1])
	}
	hash, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("checkpoint hash: %v", err)
	}
	return tlog.Tree{N: size, Hash: hash}
}

var digestRecord = regexp.MustCompile(`\Areprover/tlog-blob/v1\nsha256 [0-9a-f]{64}\nsize [1-9][0-9]*\n\z`)

// entry is what reprover logs for a file: its bytes, or a digest record when over 65535 bytes
// (or when the file itself looks like a digest record).
func entry(content []byte) []byte {
	if len(content) <= 65535 && !digestRecord.Match(content) {
		return content
	}
	return []byte(fmt.Sprintf("reprover/tlog-blob/v1\nsha256 %x\nsize %d\n", sha256.Sum256(content), len(content)))
}

func checkLog(dir, vkey, old string) {
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	tree := open(msg, vkey)
	r := tlog.TileHashReader(tree, tiles{dir})
	root, err := tlog.TreeHash(tree.N, r)
	if err != nil || root != tree.Hash {
		fail("tree hash: %v (%v != %v)", err, root, tree.Hash)
	}
	for start := int64(0); start < tree.N; start += 256 {
		w := tree.N - start
		if w > 256 {
			w = 256
		}
		bundle, err := os.ReadFile(filepath.Join(dir, path(tlog.Tile{H: 8, L: -1, N: start / 256, W: int(w)})))
		if err != nil {
			fail("%v", err)
		}
		for i := start; i < start+w; i++ {
			if len(bundle) < 2 || len(bundle) < 2+int(binary.BigEndian.Uint16(bundle)) {
				fail("bundle at %d truncated", i)
			}
			size := int(binary.BigEndian.Uint16(bundle))
			leaf := tlog.RecordHash(bundle[2 : 2+size])
			bundle = bundle[2+size:]
			stored, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
			if err != nil || stored[0] != leaf {
				fail("entry %d: %v", i, err)
			}
			p, err := tlog.ProveRecord(tree.N, i, r)
			if err != nil || tlog.CheckRecord(p, tree.N, tree.Hash, i, leaf) != nil {
				fail("inclusion of %d: %v", i, err)
			}
		}
		if len(bundle) != 0 {
			fail("bundle at %d has trailing bytes", start)
		}
	}
	if old != "" {
		msg, err := os.ReadFile(old)
		if err != nil {
			fail("%v", err)
		}
		prev := open(msg, vkey)
		p, err := tlog.ProveTree(tree.N, prev.N, r)
		if err != nil || tlog.CheckTree(p, tree.N, tree.Hash, prev.N, prev.Hash) != nil {
			fail("consistency %d -> %d: %v", prev.N, tree.N, err)
		}
	}
	fmt.Printf("ok log %d %s\n", tree.N, tree.Hash)
}

func checkProof(file, content, vkey string) {
	data, err := os.ReadFile(file)
	if err != nil {
		fail("%v", err)
	}
	var p struct {
		Schema     string   `json:"schema"`
		Index      int64    `json:"index"`
		Inclusion  []string `json:"inclusion"`
		Checkpoint string   `json:"checkpoint"`
	}
	if err := json.Unmarshal(data, &p); err != nil || p.Schema != "reprover/tlog-proof/v1" {
		fail("proof: %v", err)
	}
	tree := open([]byte(p.Checkpoint), vkey)
	var proof tlog.RecordProof
	for _, h := range p.Inclusion {
		hash, err := tlog.ParseHash(h)
		if err != nil {
			fail("proof hash: %v", err)
		}
		proof = append(proof, hash)
	}
	body, err := os.ReadFile(content)
	if err != nil {
		fail("%v", err)
	}
	if err := tlog.CheckRecord(proof, tree.N, tree.Hash, p.Index, tlog.RecordHash(entry(body))); err != nil {
		fail("inclusion: %v", err)
	}
	fmt.Printf("ok proof %d %d\n", p.Index, tree.N)
}

func sign(name, text string) {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		fail("%v", err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		fail("%v", err)
	}
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("%s\n%s", vkey, base64.StdEncoding.EncodeToString(msg))
}

func main() {
	args := os.Args[1:]
	switch {
	case len(args) >= 3 && args[0] == "log":
		old := ""
		if len(args) > 3 {
			old = args[3]
		}
		checkLog(args[1], args[2], old)
	case len(args) == 4 && args[0] == "proof":
		checkProof(args[1], args[2], args[3])
	case len(args) == 3 && args[0] == "sign":
		sign(args[1], args[2])
	default:
		fail("usage: tlogcheck log LOGDIR VKEY [OLD] | proof PROOF FILE VKEY | sign NAME TEXT")
	}
}
