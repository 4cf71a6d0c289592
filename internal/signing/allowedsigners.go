package signing

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"
)

// An SSH key item is read line by line. Each line is one of
//
//	KEYTYPE BASE64 [COMMENT]                         a plain pinned key
//	OPTIONS KEYTYPE BASE64 [COMMENT]                 an authorized_keys line
//	PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]    an allowed_signers line (ssh-keygen(1) "ALLOWED SIGNERS")
//
// allowed_signers options are cert-authority, namespaces="...", valid-after="..." and
// valid-before="..." as OpenSSH defines them; verify-required and no-touch-required
// carry their authorized_keys meaning for security-key signatures (a tamperguard
// extension: ssh-keygen skips a line that has them). Unknown options are an error, never
// ignored: an option that silently does nothing is how a retired key stays trusted.

// maxSSHLine bounds one line of an SSH key item (an RSA-16384 line is about 3 KiB).
const maxSSHLine = 16 << 10

// sshEntry is the parsed form of one line.
type sshEntry struct {
	pub        ssh.PublicKey
	comment    string
	principals string // pattern-list as written (quotes removed); "" for a plain key
	opts       sshOptions
}

// sshOptions are the options of one line that tamperguard acts on.
type sshOptions struct {
	certAuthority bool
	namespaces    string // pattern-list; "" means no namespaces clause
	hasNamespaces bool
	validAfter    time.Time
	validBefore   time.Time
	afterText     string // as written, for messages
	beforeText    string
	expires       time.Time // authorized_keys expiry-time, checked against the current time
	expiresText   string
	verifyUV      bool // verify-required
	noTouch       bool // no-touch-required
}

// sshKeyTypes are the key type names a line may carry, mapped to whether tamperguard
// accepts them as pinned keys (certificates are never pinned: pin their CA).
var sshKeyTypes = map[string]bool{
	ssh.KeyAlgoED25519: true, ssh.KeyAlgoSKED25519: true, ssh.KeyAlgoRSA: true,
	ssh.KeyAlgoECDSA256: true, ssh.KeyAlgoECDSA384: true, ssh.KeyAlgoECDSA521: true, ssh.KeyAlgoSKECDSA256: true,
	sshKeyAlgoDSA:          true,
	ssh.CertAlgoED25519v01: false, ssh.CertAlgoSKED25519v01: false, ssh.CertAlgoRSAv01: false,
	ssh.CertAlgoECDSA256v01: false, ssh.CertAlgoECDSA384v01: false, ssh.CertAlgoECDSA521v01: false,
	ssh.CertAlgoSKECDSA256v01: false, sshCertAlgoDSAv01: false,
}

// sshLoginOptions only restrict SSH logins; they mean nothing for a signature and are
// accepted (and ignored) on an authorized_keys line without principals.
var sshLoginOptions = map[string]bool{
	"restrict": true, "no-agent-forwarding": true, "no-port-forwarding": true, "no-pty": true,
	"no-user-rc": true, "no-x11-forwarding": true, "agent-forwarding": true, "port-forwarding": true,
	"pty": true, "user-rc": true, "x11-forwarding": true, "command": true, "environment": true,
	"from": true, "permitopen": true, "permitlisten": true, "tunnel": true,
}

// sshSignerOptions are the options an allowed_signers line may carry.
var sshSignerOptions = map[string]bool{
	"cert-authority": true, "namespaces": true, "valid-after": true, "valid-before": true,
	"verify-required": true, "no-touch-required": true,
}

// parseSSHEntry reads one non-blank, non-comment line.
func parseSSHEntry(line []byte) (*sshEntry, error) {
	if len(line) > maxSSHLine {
		return nil, fmt.Errorf("%w: line of %d bytes, more than the %d accepted", ErrInvalidKey, len(line), maxSSHLine)
	}
	fields, err := splitSSHFields(string(line))
	if err != nil {
		return nil, err
	}
	at := -1
	for i := 0; i < len(fields) && i < 3; i++ {
		if _, ok := sshKeyTypes[fields[i]]; ok {
			at = i
			break
		}
	}
	if at < 0 || at+1 >= len(fields) {
		return nil, fmt.Errorf("%w: no SSH public key on the line (want \"[PRINCIPALS] [OPTIONS] KEYTYPE BASE64 [COMMENT]\")", ErrInvalidKey)
	}
	if !sshKeyTypes[fields[at]] {
		return nil, fmt.Errorf("%w: SSH certificates are not pinned; pin the CA key with \"PRINCIPALS cert-authority KEY\"", ErrInvalidKey)
	}
	raw, err := base64.StdEncoding.DecodeString(fields[at+1])
	if err != nil {
		return nil, fmt.Errorf("%w: the %s key is not valid base64", ErrInvalidKey, fields[at])
	}
	pub, err := ssh.ParsePublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: unreadable %s key (%s)", ErrInvalidKey, fields[at], libErr(err))
	}
	if pub.Type() != fields[at] {
		return nil, fmt.Errorf("%w: the line says %s but the key is %s", ErrInvalidKey, fields[at], quote(pub.Type(), 40))
	}
	e := &sshEntry{pub: pub, comment: strings.Join(fields[at+2:], " ")}

	var optText string
	switch at {
	case 1:
		// "X KEY": X is options (an authorized_keys line) or principals (an
		// allowed_signers line without options). Anything that reads as options is
		// taken as options, so `valid-before="2024..." KEY` is never a principal
		// named after an option, valid forever.
		if looksLikeSSHOptions(fields[0]) {
			optText = fields[0]
		} else {
			e.principals = fields[0]
		}
	case 2:
		e.principals, optText = fields[0], fields[1]
	}
	if e.principals != "" {
		p, err := principalsField(e.principals)
		if err != nil {
			return nil, err
		}
		e.principals = p
	}
	if optText != "" {
		if e.opts, err = parseSSHOptions(optText, e.principals == ""); err != nil {
			return nil, err
		}
	}
	if e.opts.certAuthority && e.principals == "" {
		return nil, fmt.Errorf("%w: cert-authority needs the principals it may vouch for: \"PRINCIPALS cert-authority KEY\" (e.g. \"*@example.org cert-authority ssh-ed25519 AAAA...\")", ErrInvalidKey)
	}
	if !e.opts.certAuthority && !isSKKey(pub) && (e.opts.verifyUV || e.opts.noTouch) {
		return nil, fmt.Errorf("%w: verify-required and no-touch-required apply to security keys (sk-*) only, not %s", ErrInvalidKey, pub.Type())
	}
	return e, nil
}

// splitSSHFields splits a line at whitespace outside double quotes (a backslash
// escapes a quote inside quotes, as in OpenSSH's option parser).
func splitSSHFields(line string) ([]string, error) {
	var fields []string
	var cur strings.Builder
	inQuote, inField := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line) && line[i+1] == '"':
			cur.WriteString(`\"`)
			i++
			continue
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == ' ' || c == '\t' || c == '\r'):
			if inField {
				fields = append(fields, cur.String())
				cur.Reset()
				inField = false
			}
			continue
		}
		cur.WriteByte(c)
		inField = true
	}
	if inQuote {
		return nil, fmt.Errorf("%w: unterminated quote on the line", ErrInvalidKey)
	}
	if inField {
		fields = append(fields, cur.String())
	}
	return fields, nil
}

// principalsField checks and unquotes the principals field.
func principalsField(f string) (string, error) {
	if strings.HasPrefix(f, `"`) {
		if len(f) < 2 || !strings.HasSuffix(f, `"`) || strings.Contains(f[1:len(f)-1], `"`) {
			return "", fmt.Errorf("%w: badly quoted principals %s", ErrInvalidKey, quote(f, 60))
		}
		f = f[1 : len(f)-1]
	} else if strings.Contains(f, `"`) {
		return "", fmt.Errorf("%w: badly quoted principals %s (quote the whole field)", ErrInvalidKey, quote(f, 60))
	}
	if strings.TrimSpace(f) == "" {
		return "", fmt.Errorf("%w: empty principals", ErrInvalidKey)
	}
	for _, r := range f {
		if !unicode.IsPrint(r) {
			return "", fmt.Errorf("%w: principals %s hold an unprintable character", ErrInvalidKey, quote(f, 60))
		}
	}
	return f, nil
}

// looksLikeSSHOptions is true when every comma-separated item of f is named like a
// known option, or when f holds '=' (which no principal does): then a typo in an
// option name is an error rather than a principal. A quoted field is principals.
func looksLikeSSHOptions(f string) bool {
	if strings.HasPrefix(f, `"`) {
		return false
	}
	if strings.Contains(f, "=") {
		return true
	}
	for _, item := range strings.Split(f, ",") {
		name := strings.ToLower(item)
		if !sshSignerOptions[name] && !sshLoginOptions[name] && name != "expiry-time" {
			return false
		}
	}
	return true
}

// parseSSHOptions reads OPTION[,OPTION...]. A line without principals (an
// authorized_keys line) may also hold login options and expiry-time.
func parseSSHOptions(text string, authorizedKeys bool) (sshOptions, error) {
	var o sshOptions
	seen := map[string]bool{}
	for text != "" {
		item, rest, err := nextSSHOption(text)
		if err != nil {
			return o, err
		}
		text = rest
		name, value, hasValue := strings.Cut(item, "=")
		name = strings.ToLower(name)
		known := sshSignerOptions[name] || (authorizedKeys && (sshLoginOptions[name] || name == "expiry-time"))
		if !known {
			return o, fmt.Errorf("%w: unknown option %s (allowed_signers knows cert-authority, namespaces, valid-after, valid-before; tamperguard also verify-required, no-touch-required)", ErrInvalidKey, quote(name, 40))
		}
		if seen[name] {
			return o, fmt.Errorf("%w: option %s given twice", ErrInvalidKey, name)
		}
		seen[name] = true
		if sshLoginOptions[name] {
			continue // login restrictions; nothing to do with signatures
		}
		flag := name == "cert-authority" || name == "verify-required" || name == "no-touch-required"
		if flag && hasValue {
			return o, fmt.Errorf("%w: option %s takes no value", ErrInvalidKey, name)
		}
		if !flag {
			if !hasValue || len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
				return o, fmt.Errorf("%w: option %s needs a quoted value: %s=\"...\"", ErrInvalidKey, name, name)
			}
			value = strings.ReplaceAll(value[1:len(value)-1], `\"`, `"`)
		}
		switch name {
		case "cert-authority":
			o.certAuthority = true
		case "verify-required":
			o.verifyUV = true
		case "no-touch-required":
			o.noTouch = true
		case "namespaces":
			if strings.TrimSpace(value) == "" {
				return o, fmt.Errorf("%w: namespaces=\"\" is empty", ErrInvalidKey)
			}
			o.namespaces, o.hasNamespaces = value, true
		case "valid-after", "valid-before", "expiry-time":
			t, err := parseSSHTime(value)
			if err != nil {
				return o, fmt.Errorf("%w: %s=%s is not YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]", ErrInvalidKey, name, quote(value, 24))
			}
			switch name {
			case "valid-after":
				o.validAfter, o.afterText = t, value
			case "valid-before":
				o.validBefore, o.beforeText = t, value
			default:
				o.expires, o.expiresText = t, value
			}
		}
	}
	if !o.validAfter.IsZero() && !o.validBefore.IsZero() && !o.validBefore.After(o.validAfter) {
		return o, fmt.Errorf("%w: valid-before=%q is not after valid-after=%q", ErrInvalidKey, o.beforeText, o.afterText)
	}
	return o, nil
}

// nextSSHOption cuts the first option off text (commas inside quotes belong to the value).
func nextSSHOption(text string) (item, rest string, err error) {
	inQuote := false
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case inQuote && c == '\\' && i+1 < len(text) && text[i+1] == '"':
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			if i == 0 || i == len(text)-1 {
				return "", "", fmt.Errorf("%w: empty option in %s", ErrInvalidKey, quote(text, 60))
			}
			return text[:i], text[i+1:], nil
		}
	}
	if inQuote {
		return "", "", fmt.Errorf("%w: unterminated quote in options", ErrInvalidKey)
	}
	return text, "", nil
}

// parseSSHTime reads OpenSSH's YYYYMMDD[Z], YYYYMMDDHHMM[Z] and YYYYMMDDHHMMSS[Z] (also
// with a "UTC" suffix). Times are UTC with or without the suffix: OpenSSH uses the
// verifier's local zone, which for a Cloud Function is UTC, and a pinned key must not
// expire hours early or late depending on where tamperguard runs.
func parseSSHTime(v string) (time.Time, error) {
	switch {
	case len(v) > 1 && (v[len(v)-1] == 'Z' || v[len(v)-1] == 'z'):
		v = v[:len(v)-1]
	case len(v) > 3 && strings.EqualFold(v[len(v)-3:], "UTC"):
		v = v[:len(v)-3]
	}
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(v)]
	if !ok {
		return time.Time{}, fmt.Errorf("bad length")
	}
	t, err := time.Parse(layout, v)
	if err != nil {
		return time.Time{}, err
	}
	if t.Unix() <= 0 {
		return time.Time{}, fmt.Errorf("not after the epoch")
	}
	return t, nil
}

// matchPattern is OpenSSH's match_pattern: '*' matches any run, '?' one character;
// case-sensitive. It runs in O(len(s)*len(p)) at worst, so hostile patterns cannot hang it.
func matchPattern(s, p string) bool {
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			si++
			pi++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchPatternList is OpenSSH's match_pattern_list: 1 when s matches a positive
// pattern of the comma-separated list and no negated ("!pattern") one, -1 when a
// negated pattern matches, 0 otherwise.
func matchPatternList(s, list string) int {
	got := 0
	for _, p := range strings.Split(list, ",") {
		negated := strings.HasPrefix(p, "!")
		if negated {
			p = p[1:]
		}
		if matchPattern(s, p) {
			if negated {
				return -1
			}
			got = 1
		}
	}
	return got
}

// isSKKey reports whether the key (or a certificate's key) lives on a FIDO security key.
func isSKKey(pub ssh.PublicKey) bool {
	if c, ok := pub.(*ssh.Certificate); ok {
		pub = c.Key
	}
	t := pub.Type()
	return t == ssh.KeyAlgoSKED25519 || t == ssh.KeyAlgoSKECDSA256
}

// splitSSHLines yields the non-blank, non-comment lines of an item with their numbers.
func splitSSHLines(item []byte, fn func(n int, line []byte) error) error {
	for n, line := range bytes.Split(item, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if err := fn(n+1, line); err != nil {
			return err
		}
	}
	return nil
}
