package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// routeHeader marks which registered route answered.
const routeHeader = "X-Oracle-Route"

// publicRoutes are Kratos' public self-service routes that matter to the guard, the logout
// watch and the stand-in (Kratos v1.3 / v25 register these on an httprouter.Router with its
// defaults: RedirectTrailingSlash, RedirectFixedPath, HandleMethodNotAllowed, HandleOPTIONS).
func publicRoutes() [][2]string {
	var routes [][2]string
	add := func(method, p string) { routes = append(routes, [2]string{method, p}) }
	for _, kind := range []string{"login", "registration", "recovery", "verification", "settings"} {
		base := "/self-service/" + kind
		add(http.MethodGet, base+"/browser")
		add(http.MethodGet, base+"/api")
		add(http.MethodGet, base+"/flows")
		// The submit route answers GET too (links, OIDC callbacks reuse it).
		add(http.MethodGet, base)
		add(http.MethodPost, base)
	}
	add(http.MethodGet, "/self-service/logout/browser")
	add(http.MethodDelete, "/self-service/logout/api")
	add(http.MethodGet, "/self-service/logout")
	add(http.MethodGet, "/self-service/errors")
	add(http.MethodGet, "/self-service/methods/oidc/callback/:provider")
	add(http.MethodPost, "/self-service/methods/oidc/callback/:provider")
	// whoami answers every method Kratos lists for it.
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodConnect, http.MethodTrace} {
		add(m, "/sessions/whoami")
	}
	add(http.MethodGet, "/sessions")
	add(http.MethodDelete, "/sessions")
	add(http.MethodDelete, "/sessions/:id")
	add(http.MethodGet, "/health/alive")
	add(http.MethodGet, "/health/ready")
	add(http.MethodGet, "/schemas")
	add(http.MethodGet, "/schemas/:id")
	add(http.MethodGet, "/.well-known/ory/webauthn.js")
	return routes
}

var router = newRouter()

func newRouter() *httprouter.Router {
	r := httprouter.New() // defaults as Kratos leaves them
	for _, rt := range publicRoutes() {
		name := rt[0] + " " + rt[1]
		r.Handle(rt[0], rt[1], func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
			w.Header().Set(routeHeader, name)
			w.WriteHeader(http.StatusOK)
		})
	}
	return r
}

// opRoute reads "METHOD target HTTP/1.1" the way Go's HTTP server does, applies Kratos'
// clean-path middleware (httprouter.CleanPath on the decoded r.URL.Path) and routes it.
func opRoute(q question) (answer, error) {
	method, err := q.str("method")
	if err != nil {
		return nil, err
	}
	target, err := q.str("target")
	if err != nil {
		return nil, err
	}
	// A target with SP, CR or LF cannot be one request line: Go answers 400.
	if strings.ContainsAny(target, " \r\n") || strings.ContainsAny(method, " \r\n") {
		return answer{"kind": "bad_request", "reason": "malformed request line"}, nil
	}
	raw := method + " " + target + " HTTP/1.1\r\nHost: kratos.test\r\n\r\n"
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		return answer{"kind": "bad_request", "reason": err.Error()}, nil
	}
	a := answer{}
	a.bytesField("decoded_path", req.URL.Path)
	a["raw_query"] = req.URL.RawQuery
	if req.RequestURI == "*" && req.Method == http.MethodOptions {
		// net/http answers "OPTIONS *" itself; the handler never sees it.
		a["kind"] = "options_star"
		return a, nil
	}
	req.URL.Path = httprouter.CleanPath(req.URL.Path)
	a.bytesField("path", req.URL.Path)
	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, req)
	a["status"] = rec.Code
	switch {
	case rec.Header().Get(routeHeader) != "":
		a["kind"] = "handler"
		a["handler"] = rec.Header().Get(routeHeader)
	case rec.Code == http.StatusMovedPermanently || rec.Code == http.StatusTemporaryRedirect ||
		rec.Code == http.StatusPermanentRedirect:
		a["kind"] = "redirect"
		a.bytesField("location", rec.Header().Get("Location"))
	case rec.Code == http.StatusMethodNotAllowed:
		a["kind"] = "method_not_allowed"
		a["allow"] = rec.Header().Get("Allow")
	case rec.Code == http.StatusNotFound:
		a["kind"] = "not_found"
	case method == http.MethodOptions && rec.Code == http.StatusOK:
		a["kind"] = "options"
		a["allow"] = rec.Header().Get("Allow")
	default:
		a["kind"] = "other"
	}
	return a, nil
}

// opCleanPath answers both cleaners, for unit-level comparison.
func opCleanPath(q question) (answer, error) {
	p, err := q.str("value")
	if err != nil {
		return nil, err
	}
	a := answer{}
	a.bytesField("httprouter", httprouter.CleanPath(p))
	a.bytesField("path", path.Clean(p))
	return a, nil
}

// opUnescape is url.PathUnescape (what setPath does to a request path).
func opUnescape(q question) (answer, error) {
	p, err := q.str("value")
	if err != nil {
		return nil, err
	}
	s, uerr := url.PathUnescape(p)
	if uerr != nil {
		return answer{"ok": false, "error_text": uerr.Error()}, nil
	}
	a := answer{"ok": true}
	a.bytesField("value", s)
	return a, nil
}
