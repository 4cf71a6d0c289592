package gcs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gsref"
)

// Error is what every Store method returns on failure: which operation, on which object
// and generation, under which condition, and why. errors.Is matches the engine's
// sentinels (engine.ErrObjectNotFound, engine.ErrPrecondition, engine.ErrTransient)
// through Kind, and errors.Is/As still reach the SDK's error (*googleapi.Error,
// context.DeadlineExceeded, ...) through Err.
type Error struct {
	Op         string // "attrs", "open", "read", "versions", "list", "write", "copy", "delete", "update metadata"
	Bucket     string
	Object     string // the object, or the prefix for "list"
	Generation int64  // 0: the live generation (or, for "write", the one being created)
	Cond       string // the precondition sent, e.g. "ifGenerationMatch=12"; "" if none
	Kind       error  // engine.ErrObjectNotFound, engine.ErrPrecondition, engine.ErrTransient or nil
	Err        error  // the cause
}

// Error renders e for a log line at 3 a.m.: the object name is quoted (%q), so odd bytes
// in a name chosen by an attacker are visible and cannot forge log lines, and so is any
// control character in the cause.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("gcs: ")
	b.WriteString(e.Op)
	b.WriteByte(' ')
	switch {
	case e.Op == "list":
		// Object is the prefix.
		loc := Location(e.Bucket, e.Object, 0)
		b.WriteString(strings.TrimSuffix(loc, "#live") + "*")
	case (e.Op == "write" || e.Op == "copy") && e.Generation == 0:
		// The generation does not exist yet.
		loc := Location(e.Bucket, e.Object, 0)
		b.WriteString(strings.TrimSuffix(loc, "#live") + "#new")
	default:
		b.WriteString(Location(e.Bucket, e.Object, e.Generation))
	}
	if e.Cond != "" {
		b.WriteString(" [")
		b.WriteString(e.Cond)
		b.WriteByte(']')
	}
	if e.Kind != nil && e.Kind != e.Err {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(printable(e.Err.Error()))
	}
	return b.String()
}

// Unwrap exposes both the engine's sentinel and the cause.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil && e.Err != e.Kind {
		errs = append(errs, e.Err)
	}
	return errs
}

// Location renders gs://bucket/"object"#generation, the object reference's %q form (the
// object name always quoted, and a bucket name made of other characters than bucket names
// allow); generation 0 renders as #live.
func Location(bucket, object string, gen int64) string {
	if gen > 0 {
		return fmt.Sprintf("%q", gsref.ObjectRef{Bucket: bucket, Object: object, Generation: gen})
	}
	return fmt.Sprintf("%q", gsref.ObjectRef{Bucket: bucket, Object: object}) + "#live"
}

// printable returns s, or s quoted if it holds anything but graphic characters and
// spaces (error texts from the SDK and the server can carry newlines and bytes of the
// object name).
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) && r != ' ' }) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// kindOf classifies an error from the SDK: not found, lost precondition, worth
// retrying, or none of those (nil).
func kindOf(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, storage.ErrObjectNotExist) {
		return engine.ErrObjectNotFound
	}
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		switch c := gerr.Code; {
		case c == http.StatusNotFound:
			return engine.ErrObjectNotFound
		case c == http.StatusPreconditionFailed:
			return engine.ErrPrecondition
		case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests, c >= 500 && c <= 599:
			return engine.ErrTransient
		}
		return nil
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.NotFound:
			return engine.ErrObjectNotFound
		case codes.FailedPrecondition:
			return engine.ErrPrecondition
		case codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.DeadlineExceeded, codes.Aborted:
			return engine.ErrTransient
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return engine.ErrTransient
	}
	if errors.Is(err, context.Canceled) {
		// The caller gave up: not the store's failure, and not a reason to retry.
		return nil
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return engine.ErrTransient
	}
	// Connection refused or reset, unexpected EOF, closed idle connections: what the SDK
	// itself retries.
	if storage.ShouldRetry(err) {
		return engine.ErrTransient
	}
	return nil
}
