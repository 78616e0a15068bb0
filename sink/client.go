package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Sender sends one Conversions API request for a pixel. The Batcher depends on this
// interface, not on GraphClient, so that tests and other transports can stand in.
//
// On success Send returns Meta's response; the caller compares events_received with the
// number of events sent. On failure it returns an error, an *APIError for every failure a
// GraphClient can place, whose Class decides whether the request is retried.
type Sender interface {
	Send(ctx context.Context, pixelID string, req *Request) (*Response, error)
}

// GraphClient is a Sender that POSTs to Meta's Graph API. It is safe for concurrent use.
type GraphClient struct {
	baseURL   string
	version   string
	tokens    func(pixelID string) (string, bool)
	appSecret []byte
	hc        *http.Client

	// proofs caches appsecret_proof per pixel as a *proofEntry. It is keyed by pixel, not
	// token, so that rotated tokens replace their entry instead of accumulating.
	proofs sync.Map

	// bufs pools request bodies: a 1,000-event body is hundreds of kilobytes and the
	// batcher sends them continuously.
	bufs sync.Pool
	// bytesPerEvent is the size per event of the latest body, so that a body the pool
	// cannot supply (it empties at every GC) is allocated once at about its final size
	// rather than grown by doubling: that growth was most of the bytes the encoder allocated.
	bytesPerEvent atomic.Int64
}

type proofEntry struct {
	token, proof string
}

var _ Sender = (*GraphClient)(nil)

// NewGraphClient returns a client configured by opts.
func NewGraphClient(opts ...ClientOption) *GraphClient {
	c := &GraphClient{baseURL: DefaultBaseURL, version: DefaultAPIVersion}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient()
	}
	return c
}

// maxResponseBytes bounds how much of an answer is read. CAPI answers are a few hundred
// bytes; the limit only guards against a misbehaving proxy.
const maxResponseBytes = 1 << 20

// The body on the wire is the Request plus the credentials (access_token, appsecret_proof),
// which are kept out of Request so that it can be logged. appendRequest writes it.

// Send POSTs req to /{version}/{pixelID}/events. The access token and appsecret_proof go
// in the JSON body rather than the query string, because URLs end up in logs and in
// transport errors.
func (c *GraphClient) Send(ctx context.Context, pixelID string, req *Request) (*Response, error) {
	if pixelID == "" {
		return nil, &APIError{Class: ClassInvalid, Err: errors.New("empty pixel id")}
	}
	var token string
	ok := false
	if c.tokens != nil {
		token, ok = c.tokens(pixelID)
	}
	if !ok || token == "" {
		return nil, &APIError{PixelID: pixelID, Class: ClassAuth, Err: ErrNoToken}
	}
	proof := c.proof(pixelID, token)

	buf := c.getBuffer(req)
	b, err := appendRequest((*buf)[:0], req, token, proof)
	if err != nil {
		c.putBuffer(buf)
		return nil, &APIError{
			PixelID: pixelID,
			Class:   ClassInvalid,
			Err:     fmt.Errorf("%w: %w", ErrEncodeRequest, scrubError(err, token, proof)),
		}
	}
	*buf = b // keep the grown slice, so the pool hands it out again
	if req != nil && len(req.Data) > 0 {
		c.bytesPerEvent.Store(int64(len(b) / len(req.Data)))
	}
	body := &pooledBody{c: c, buf: buf}
	body.r.Reset(b)

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(pixelID), nil)
	if err != nil {
		c.putBuffer(buf)
		return nil, &APIError{PixelID: pixelID, Class: ClassInvalid, Err: err}
	}
	// Set after NewRequest so that it does not install GetBody: the buffer goes back to
	// the pool once the transport closes the body, so nothing may reread it.
	hreq.Body = body
	hreq.ContentLength = int64(len(b))
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")

	resp, err := c.hc.Do(hreq)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			ue.URL = redactURL(ue.URL)
		}
		return nil, &APIError{PixelID: pixelID, Class: ClassTransient, Err: scrubError(err, token, proof)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes)) // lets the connection be reused
	resp.Body.Close()
	if err != nil {
		return nil, &APIError{
			PixelID:    pixelID,
			HTTPStatus: resp.StatusCode,
			Class:      ClassTransient,
			Err:        fmt.Errorf("read response: %w", scrubError(err, token, proof)),
		}
	}

	r, ae := parseAnswer(pixelID, resp.StatusCode, resp.Status, resp.Header, data, time.Now(), token, proof)
	if ae != nil {
		return nil, ae
	}
	return r, nil
}

func (c *GraphClient) endpoint(pixelID string) string {
	return c.baseURL + "/" + c.version + "/" + url.PathEscape(pixelID) + "/events"
}

// proof returns the appsecret_proof for token, or "" without an app secret. The HMAC is
// computed once per token: tokens change rarely and requests are many.
func (c *GraphClient) proof(pixelID, token string) string {
	if len(c.appSecret) == 0 {
		return ""
	}
	if v, ok := c.proofs.Load(pixelID); ok {
		if e := v.(*proofEntry); e.token == token {
			return e.proof
		}
	}
	p := AppSecretProof(c.appSecret, token)
	c.proofs.Store(pixelID, &proofEntry{token: token, proof: p})
	return p
}

// AppSecretProof returns lowercase hex HMAC-SHA256(key=appSecret, message=token), the
// appsecret_proof Graph expects next to an access token.
func AppSecretProof(appSecret []byte, token string) string {
	m := hmac.New(sha256.New, appSecret)
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// redactURL removes credentials a URL may carry in its query or user info. The client puts
// none there, but a base URL or a redirect might.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "[unparseable url]"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for _, k := range []string{"access_token", "appsecret_proof"} {
			if q.Has(k) {
				q.Set(k, "redacted")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// maxPooledBuffer keeps an unusually large body from pinning its memory in the pool.
const maxPooledBuffer = 8 << 20

func (c *GraphClient) getBuffer(req *Request) *[]byte {
	if b, ok := c.bufs.Get().(*[]byte); ok {
		return b
	}
	b := new([]byte)
	if req != nil {
		// An eighth more than the latest body's rate, for events larger than the last ones;
		// the credentials and the envelope fit in the kilobyte.
		n := c.bytesPerEvent.Load() * int64(len(req.Data)) * 9 / 8
		*b = make([]byte, 0, min(n, maxPooledBuffer)+1024)
	}
	return b
}

func (c *GraphClient) putBuffer(b *[]byte) {
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	c.bufs.Put(b)
}

// pooledBody returns its buffer to the pool when the transport closes it. net/http may
// still be writing the body after Do returns (when the server answers early), so Close,
// not Do's return, is the point where the buffer is free. The mutex makes a Read racing
// with Close see the close instead of a recycled buffer.
type pooledBody struct {
	c      *GraphClient
	mu     sync.Mutex
	buf    *[]byte
	r      bytes.Reader
	closed bool
}

func (b *pooledBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.r.Read(p)
}

func (b *pooledBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.r.Reset(nil)
		b.c.putBuffer(b.buf)
		b.buf = nil
	}
	return nil
}
