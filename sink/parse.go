package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// parseAnswer turns one HTTP answer (status, headers, the body as read) into Meta's success
// response or the *APIError Send returns. It is pure so that it can be fuzzed without a
// server: every byte of it comes from the network, and a Graph error must never make the
// relay panic or carry the caller's secrets into logs. token and proof are scrubbed from
// every text the error keeps; now anchors an HTTP-date Retry-After.
//
// Exactly one result is non-nil.
func parseAnswer(pixelID string, status int, statusText string, h http.Header, data []byte, now time.Time, token, proof string) (*Response, *APIError) {
	if status >= 200 && status <= 299 {
		var r Response
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, &APIError{
				PixelID:    pixelID,
				HTTPStatus: status,
				Class:      ClassUnknown,
				Err:        fmt.Errorf("decode response: %w", err),
			}
		}
		return &r, nil
	}

	var eb ErrorBody
	ae := &APIError{PixelID: pixelID, HTTPStatus: status}
	if json.Unmarshal(data, &eb) == nil && (eb.Error.Code != 0 || eb.Error.Message != "") {
		g := eb.Error
		g.Message = scrub(g.Message, token, proof)
		g.Type = scrub(g.Type, token, proof)
		g.UserTitle = scrub(g.UserTitle, token, proof)
		g.UserMessage = scrub(g.UserMessage, token, proof)
		g.FBTraceID = scrub(g.FBTraceID, token, proof)
		if containsSecret(g.ErrorData, token, proof) {
			g.ErrorData = nil
		}
		ae.Graph = g
		ae.Class = Classify(status, &g)
	} else {
		ae.Class = Classify(status, nil)
		ae.Err = fmt.Errorf("unexpected %s answer without a Graph error", statusText)
	}
	if ae.Class == ClassRateLimit || ae.Class == ClassTransient {
		ae.RetryAfter = retryHint(h, now)
	}
	return nil, ae
}

// containsSecret reports whether raw JSON holds a secret, either verbatim or in the escaped
// form json.Marshal would give it ("\u0026" for '&', say).
func containsSecret(raw []byte, secrets ...string) bool {
	if len(raw) == 0 {
		return false
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if bytes.Contains(raw, []byte(s)) {
			return true
		}
		if esc, err := json.Marshal(s); err == nil && bytes.Contains(raw, esc[1:len(esc)-1]) {
			return true
		}
	}
	return false
}
