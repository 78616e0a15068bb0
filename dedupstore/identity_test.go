package dedupstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIdentityMap(t *testing.T) {
	h := func(c string) string { return strings.Repeat(c, 64) } // stands for a SHA-256 hex
	em1, ph1, em2, unknown := h("1"), h("2"), h("c"), h("f")
	tests := []struct {
		name    string
		links   []IdentityLink
		advance func(e *env) time.Duration
		queries [][]string
		want    []string
	}{
		{
			name:  "round trip",
			links: []IdentityLink{{Identifiers: []string{em1, ph1}, ExternalID: "ext1"}, {Identifiers: []string{em2}, ExternalID: "ext2"}},
			queries: [][]string{
				{em1}, {unknown, ph1}, {em2, em1}, {unknown}, {}, nil, {ph1, ph1},
			},
			want: []string{"ext1", "ext1", "ext2", "", "", "", "ext1"},
		},
		{
			name:    "later link overwrites",
			links:   []IdentityLink{{Identifiers: []string{em1}, ExternalID: "old"}, {Identifiers: []string{em1}, ExternalID: "new"}},
			queries: [][]string{{em1}},
			want:    []string{"new"},
		},
		{
			name: "raw or malformed identifiers are neither stored nor looked up",
			links: []IdentityLink{
				{Identifiers: []string{"jane@example.com", strings.ToUpper(em2), em1}, ExternalID: "ext1"},
				{Identifiers: []string{ph1}, ExternalID: ""},
			},
			queries: [][]string{{"jane@example.com"}, {strings.ToUpper(em2)}, {"jane@example.com", em1}, {ph1}},
			want:    []string{"", "", "ext1", ""},
		},
		{
			name:    "still linked before the TTL",
			links:   []IdentityLink{{Identifiers: []string{em1}, ExternalID: "ext1"}},
			advance: func(e *env) time.Duration { return e.ttl / 2 },
			queries: [][]string{{em1}},
			want:    []string{"ext1"},
		},
		{
			name:    "forgotten after the TTL",
			links:   []IdentityLink{{Identifiers: []string{em1, ph1}, ExternalID: "ext1"}},
			advance: func(e *env) time.Duration { return e.ttl + e.ttl/4 },
			queries: [][]string{{em1}, {ph1}},
			want:    []string{"", ""},
		},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					e := be.setup(t)
					m := e.idmap(WithLogger(quiet))
					ctx := ctxT(t, 10*time.Second)
					if err := m.Remember(ctx, tc.links); err != nil {
						t.Fatalf("Remember: %v", err)
					}
					if tc.advance != nil {
						e.advance(tc.advance(e))
					}
					got, err := m.Lookup(ctx, tc.queries)
					if err != nil {
						t.Fatalf("Lookup: %v", err)
					}
					if !slices.Equal(got, tc.want) {
						t.Fatalf("Lookup = %q, want %q", got, tc.want)
					}
				})
			}
		})
	}
}

func TestRedisIdentityMapErrors(t *testing.T) {
	id := strings.Repeat("a", 64)
	tests := []struct {
		name     string
		failOpen bool
		check    func(t *testing.T, m *RedisIdentityMap)
	}{
		{"block: lookup waits for the deadline", false, func(t *testing.T, m *RedisIdentityMap) {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			if got, err := m.Lookup(ctx, [][]string{{id}}); !errors.Is(err, context.DeadlineExceeded) || got != nil {
				t.Fatalf("Lookup = %q, %v; want nil, DeadlineExceeded", got, err)
			}
		}},
		{"block: remember waits for the deadline", false, func(t *testing.T, m *RedisIdentityMap) {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			if err := m.Remember(ctx, []IdentityLink{{Identifiers: []string{id}, ExternalID: "x"}}); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Remember = %v; want DeadlineExceeded", err)
			}
		}},
		{"fail-open: lookup answers nothing, remember skips, both counted", true, func(t *testing.T, m *RedisIdentityMap) {
			got, err := m.Lookup(ctxT(t, 10*time.Second), [][]string{{id}, {id}, {}})
			if err != nil || !slices.Equal(got, []string{"", "", ""}) {
				t.Fatalf("Lookup = %q, %v; want three empty answers", got, err)
			}
			if err := m.Remember(ctxT(t, 10*time.Second), []IdentityLink{{Identifiers: []string{id, strings.Repeat("b", 64)}, ExternalID: "x"}}); err != nil {
				t.Fatalf("Remember: %v", err)
			}
			if st := m.Stats(); st.FailOpenSkips != 3 || st.Errors != 2 {
				t.Fatalf("stats = %+v, want 3 fail-open skips (1 lookup, 2 remembered) and 2 errors", st)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mr, s := miniStore(t)
			opts := []Option{WithBackoff(5*time.Millisecond, 20*time.Millisecond), WithLogger(quiet)}
			if tc.failOpen {
				opts = append(opts, WithFailOpen())
			}
			m := NewRedisIdentityMap(s.core.client, opts...)
			mr.Close()
			tc.check(t, m)
		})
	}
}
