// Command oracle answers questions about how Ory Kratos reads a request, using the Go
// packages Kratos itself is built from (net/http, net/url, mime, strings, x/text, gofrs/uuid,
// julienschmidt/httprouter). It is a test tool: kratos-hooks' pure functions are compared
// with its answers (tests/parity), and the Kratos stand-in routes and normalises with it.
//
// Protocol: one JSON object per line on stdin, one JSON object per line on stdout, answers
// in the order of the questions (a client may write a batch, then read the batch). Every
// question has "op"; any string field X may be sent as "X_hex" (hex of the exact bytes)
// instead, and answers carry "X_hex" beside string fields whose bytes need not be UTF-8.
// A question the oracle cannot parse gets {"error": "..."}; the process keeps running.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

type question map[string]json.RawMessage

// str reads string field name, or its hex form name_hex.
func (q question) str(name string) (string, error) {
	if raw, ok := q[name+"_hex"]; ok {
		var h string
		if err := json.Unmarshal(raw, &h); err != nil {
			return "", fmt.Errorf("%s_hex: %w", name, err)
		}
		b, err := hex.DecodeString(h)
		if err != nil {
			return "", fmt.Errorf("%s_hex: %w", name, err)
		}
		return string(b), nil
	}
	raw, ok := q[name]
	if !ok {
		return "", fmt.Errorf("missing field %q", name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

type answer map[string]any

// bytesField sets name and name_hex, so a client can recover bytes JSON cannot carry.
func (a answer) bytesField(name, value string) {
	a[name] = value
	a[name+"_hex"] = hex.EncodeToString([]byte(value))
}

var ops = map[string]func(question) (answer, error){
	"route":             opRoute,
	"media_type":        opMediaType,
	"lower":             opLower,
	"identifier":        opIdentifier,
	"uuid":              opUUID,
	"query_get":         opQueryGet,
	"clean_path":        opCleanPath,
	"unescape":          opUnescape,
	"tables":            opTables,
	"nfkc":              opNFKC,
	"identifier_legacy": opIdentifierLegacy,
	"ping":              func(question) (answer, error) { return answer{"pong": true}, nil },
}

func handle(line []byte) answer {
	var q question
	if err := json.Unmarshal(line, &q); err != nil {
		return answer{"error": "bad question: " + err.Error()}
	}
	var op string
	if err := json.Unmarshal(q["op"], &op); err != nil {
		return answer{"error": "missing op"}
	}
	f, ok := ops[op]
	if !ok {
		return answer{"error": "unknown op " + op}
	}
	a, err := f(q)
	if err != nil {
		return answer{"error": err.Error()}
	}
	return a
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if encErr := enc.Encode(handle(line)); encErr != nil {
				fmt.Fprintln(os.Stderr, "oracle: encode:", encErr)
				os.Exit(1)
			}
		}
		// Flush once the client has nothing more queued: a batch is answered in one write.
		if in.Buffered() == 0 || err != nil {
			if flushErr := out.Flush(); flushErr != nil {
				os.Exit(1)
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "oracle: read:", err)
			os.Exit(1)
		}
	}
}
