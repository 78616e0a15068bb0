package sink

import (
	"net/http"
	"strings"
	"time"
)

const (
	// DefaultBaseURL is the Graph API host.
	DefaultBaseURL = "https://graph.facebook.com"
	// DefaultAPIVersion is the Graph API version requests go to. Meta supports each
	// Conversions API version for at least two years.
	DefaultAPIVersion = "v25.0"
	// DefaultRequestTimeout bounds one request of the default HTTP client, from dial to the
	// end of the response body.
	DefaultRequestTimeout = 30 * time.Second
)

// A ClientOption configures a GraphClient.
type ClientOption func(*GraphClient)

// WithBaseURL sets the scheme and host requests go to, such as a test server's URL.
// The default is DefaultBaseURL.
func WithBaseURL(u string) ClientOption {
	return func(c *GraphClient) { c.baseURL = strings.TrimRight(u, "/") }
}

// WithAPIVersion sets the Graph API version, such as "v25.0". The default is
// DefaultAPIVersion.
func WithAPIVersion(v string) ClientOption {
	return func(c *GraphClient) { c.version = strings.Trim(v, "/") }
}

// WithTokenSource sets how the client finds the access token of a pixel. A partner holds one
// token per advertiser, so tokens are looked up per request; the function must be safe for
// concurrent use and fast (cache secret-store reads behind it). Without a token source, or
// when it reports !ok, Send fails with ErrNoToken and ClassAuth.
func WithTokenSource(tokens func(pixelID string) (token string, ok bool)) ClientOption {
	return func(c *GraphClient) { c.tokens = tokens }
}

// WithAppSecret makes every request carry appsecret_proof, the HMAC-SHA256 of the access
// token keyed by the app secret, which apps that enable "Require App Secret" must send.
func WithAppSecret(secret string) ClientOption {
	return func(c *GraphClient) { c.appSecret = []byte(secret) }
}

// WithHTTPClient sets the HTTP client. The default has a DefaultRequestTimeout timeout and a
// transport that keeps enough idle connections per host for the batcher's in-flight
// requests.
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *GraphClient) { c.hc = hc }
}

// defaultMaxIdleConnsPerHost keeps connections for many more requests in flight than the
// batcher's default, so that raising MaxInFlight does not start churning TLS handshakes
// (net/http's default keeps only 2 idle connections per host).
const defaultMaxIdleConnsPerHost = 64

func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 2 * defaultMaxIdleConnsPerHost
	tr.MaxIdleConnsPerHost = defaultMaxIdleConnsPerHost
	tr.IdleConnTimeout = 90 * time.Second
	tr.ResponseHeaderTimeout = DefaultRequestTimeout
	return &http.Client{Transport: tr, Timeout: DefaultRequestTimeout}
}
