package sink

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrNoToken is wrapped by the *APIError a GraphClient returns when its token source
	// has no access token for the pixel. Its class is ClassAuth.
	ErrNoToken = errors.New("no access token for pixel")
	// ErrEncodeRequest is wrapped by the *APIError returned when a request cannot be encoded
	// as JSON (a NaN value, say). Its class is ClassInvalid and, as the culprit is an event,
	// the batcher bisects to find it.
	ErrEncodeRequest = errors.New("encode request")
	// ErrEventsReceivedMismatch is wrapped by the *APIError the batcher records when Meta
	// answers 200 with an events_received different from the number of events sent.
	ErrEventsReceivedMismatch = errors.New("events_received does not match events sent")
)

// APIError is a failed Conversions API request. It never holds the access token or the
// appsecret_proof, so it may be logged and stored in a dead-letter record.
type APIError struct {
	// PixelID is the pixel (dataset) the request was for.
	PixelID string
	// HTTPStatus is the answer's status code; 0 when there was no answer.
	HTTPStatus int
	// Graph is Meta's error object; zero when the body held none.
	Graph GraphError
	// Class is what to do about it.
	Class Class
	// RetryAfter is the wait Meta's headers ask for before the next request (Retry-After,
	// X-Business-Use-Case-Usage, X-App-Usage); 0 when they ask for none.
	RetryAfter time.Duration
	// Err is the underlying cause when there was no Graph error: a transport error, an
	// undecodable body, ErrNoToken, ErrEncodeRequest.
	Err error
}

// Error names the pixel, the status, Meta's code/subcode, fbtrace_id and message: what a
// person needs to look the failure up in Meta's tools.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("capi: pixel ")
	b.WriteString(e.PixelID)
	if e.HTTPStatus != 0 {
		b.WriteString(": HTTP ")
		b.WriteString(strconv.Itoa(e.HTTPStatus))
	}
	if g := &e.Graph; g.Code != 0 || g.Message != "" {
		b.WriteString(": code ")
		b.WriteString(strconv.Itoa(g.Code))
		if g.Subcode != 0 {
			b.WriteByte('/')
			b.WriteString(strconv.Itoa(g.Subcode))
		}
		if g.FBTraceID != "" {
			b.WriteString(" (fbtrace_id ")
			b.WriteString(g.FBTraceID)
			b.WriteByte(')')
		}
		if g.Message != "" {
			b.WriteString(": ")
			b.WriteString(g.Message)
		}
		if g.UserTitle != "" || g.UserMessage != "" {
			b.WriteString(" [")
			b.WriteString(g.UserTitle)
			if g.UserTitle != "" && g.UserMessage != "" {
				b.WriteString(": ")
			}
			b.WriteString(g.UserMessage)
			b.WriteByte(']')
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.Err }

// scrubbedError stands in for an error whose text contains a secret (a proxy echoing the
// request, say). It drops the original chain, which would still hold the secret, keeping
// only a context error for errors.Is.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrub replaces every secret in s.
func scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// scrubError returns err unchanged unless its text contains a secret.
func scrubError(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := scrub(msg, secrets...)
	if clean == msg {
		return err
	}
	var cause error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		cause = context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		cause = context.Canceled
	}
	return &scrubbedError{msg: clean, err: cause}
}
