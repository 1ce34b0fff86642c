package main

import (
	"mime"
	"net/url"
	"sort"
	"strings"
	"unicode"

	"github.com/gofrs/uuid"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/runes"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/rangetable"
)

// The identifier canonicalisation of Kratos' x/normalize.go (current releases), written
// from its description in KRATOS.md and the x/text documentation: a PRECIS FreeformClass
// profile with width folding, lower-casing, NFKC, the Bidi rule and four disallowed rune
// sets; graceful mode strips what the profile refuses and re-runs NFKC and lower-casing.
var identifierDisallowed = rangetable.Merge(
	unicode.Bidi_Control,
	unicode.Other_Default_Ignorable_Code_Point,
	unicode.Other,
	unicode.Noncharacter_Code_Point,
)

var emailProfile = precis.NewFreeform(
	precis.FoldWidth,
	precis.LowerCase(),
	precis.DisallowEmpty,
	precis.BidiRule,
	precis.Norm(norm.NFKC),
	precis.Disallow(runes.In(identifierDisallowed)),
)

var phoneProfile = precis.NewFreeform(precis.FoldWidth)

// graceful applies profile to the trimmed value; when the profile refuses it, the runes the
// profile does not allow are removed between NFKC and lower-casing instead.
func graceful(profile *precis.Profile, value string) (string, bool) {
	value = strings.TrimSpace(value)
	if out, err := profile.String(value); err == nil {
		return out, true
	}
	allowed := profile.Allowed()
	chain := transform.Chain(
		norm.NFKC,
		runes.Remove(runes.Predicate(func(r rune) bool { return !allowed.Contains(r) })),
		cases.Lower(language.Und),
	)
	out, _, err := transform.String(chain, value)
	if err != nil {
		return value, false
	}
	return out, false
}

// opIdentifier answers GracefulNormalization without its phone-number step (no Go
// libphonenumber here): "canonical" is the first canonicalisation (what phonenumbers.Parse
// sees), "phone_input" what NormalizePhoneIdentifier hands to phonenumbers when that parse
// gives a valid number, "normalized" the result when it does not.
func opIdentifier(q question) (answer, error) {
	v, err := q.str("value")
	if err != nil {
		return nil, err
	}
	canonical, strict := graceful(emailProfile, v)
	normalized, _ := graceful(emailProfile, canonical)
	phoneInput, _ := graceful(phoneProfile, canonical)
	a := answer{"strict": strict}
	a.bytesField("canonical", canonical)
	a.bytesField("normalized", normalized)
	a.bytesField("phone_input", phoneInput)
	return a, nil
}

func opLower(q question) (answer, error) {
	v, err := q.str("value")
	if err != nil {
		return nil, err
	}
	a := answer{}
	a.bytesField("value", strings.ToLower(v))
	return a, nil
}

// opMediaType answers mime.ParseMediaType, and which decoder ory/x decoderx would pick in
// its two shapes: the current one (ParseMediaType of the trimmed header, refuse on error)
// and the older one (each comma-separated piece, stop at the first error).
func opMediaType(q question) (answer, error) {
	v, err := q.str("value")
	if err != nil {
		return nil, err
	}
	mt, params, perr := mime.ParseMediaType(v)
	a := answer{"ok": perr == nil}
	a.bytesField("type", mt)
	if perr != nil {
		a["error_text"] = perr.Error()
	} else {
		keys := make([]string, 0, len(params))
		for k := range params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ps := make([][2]string, 0, len(keys))
		for _, k := range keys {
			ps = append(ps, [2]string{k, params[k]})
		}
		a["params"] = ps
	}
	a["decoder_new"] = decoderNew(v)
	a["decoder_old"] = decoderOld(v)
	return a, nil
}

const (
	ctJSON      = "application/json"
	ctForm      = "application/x-www-form-urlencoded"
	ctMultipart = "multipart/form-data"
)

func decoderFor(has func(...string) bool) string {
	// decoderx refuses unless the type is one it accepts, then tries JSON before forms.
	if !has(ctJSON, ctForm, ctMultipart) {
		return ""
	}
	if has(ctJSON) {
		return "json"
	}
	if has(ctForm, ctMultipart) {
		return "form"
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func decoderNew(header string) string {
	return decoderFor(func(types ...string) bool {
		if header == "" {
			return contains(types, "application/octet-stream")
		}
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(header))
		return err == nil && contains(types, mt)
	})
}

func decoderOld(header string) string {
	return decoderFor(func(types ...string) bool {
		if header == "" {
			return contains(types, "application/octet-stream")
		}
		for _, piece := range strings.Split(header, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(piece))
			if err != nil {
				break
			}
			if contains(types, mt) {
				return true
			}
		}
		return false
	})
}

func opUUID(q question) (answer, error) {
	v, err := q.str("value")
	if err != nil {
		return nil, err
	}
	u, uerr := uuid.FromString(v)
	if uerr != nil {
		return answer{"value": nil}, nil
	}
	return answer{"value": u.String()}, nil
}

// opQueryGet is what Kratos reads for ?flow=: r.URL.Query().Get(name), i.e. url.ParseQuery
// with its error ignored, then the first value.
func opQueryGet(q question) (answer, error) {
	query, err := q.str("query")
	if err != nil {
		return nil, err
	}
	name, err := q.str("name")
	if err != nil {
		return nil, err
	}
	values, perr := url.ParseQuery(query)
	a := answer{"ok": perr == nil}
	a.bytesField("value", values.Get(name))
	_, present := values[name]
	a["present"] = present
	return a, nil
}

// opNFKC is x/text's norm.NFKC, which Kratos' profile and graceful mode both apply.
func opNFKC(q question) (answer, error) {
	v, err := q.str("value")
	if err != nil {
		return nil, err
	}
	a := answer{}
	a.bytesField("value", norm.NFKC.String(v))
	return a, nil
}

// opIdentifierLegacy answers the older GracefulNormalization releases, again without the
// phone step (which parsed "phone_input" and, when valid, returned its E.164 form):
// "v1" trimmed, and lower-cased identifiers with an "@"; "v2" lower-cased all of them;
// "v3" first applied NFKC and removed format characters (Cf).
func opIdentifierLegacy(q question) (answer, error) {
	v, err := q.str("value")
	if err != nil {
		return nil, err
	}
	lowerTrim := func(s string) string { return strings.TrimSpace(strings.ToLower(s)) }
	v1 := strings.TrimSpace(v)
	if strings.Contains(v, "@") {
		v1 = lowerTrim(v)
	}
	canonical, _, terr := transform.String(
		transform.Chain(norm.NFKC, runes.Remove(runes.In(unicode.Cf))), v)
	if terr != nil {
		canonical = v
	}
	a := answer{}
	a.bytesField("v1", v1)
	a.bytesField("v2", lowerTrim(v))
	a.bytesField("v3", lowerTrim(canonical))
	a.bytesField("v3_phone_input", canonical)
	return a, nil
}
