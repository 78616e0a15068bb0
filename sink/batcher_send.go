package sink

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// send makes one request for bt and acts on the answer. It runs on its own goroutine and
// holds one in-flight slot until it returns the batch to the ready list or settles it.
func (b *Batcher) send(bt *batch) {
	defer b.wg.Done()
	req := &Request{Data: bt.events, PartnerAgent: b.cfg.partnerAgent}
	if f := b.cfg.testEventCode; f != nil {
		req.TestEventCode = f(bt.pixel.id)
	}
	start := time.Now()
	if bt.retry.first.IsZero() {
		bt.retry.first = start
	} else {
		b.counters.retries.Add(1)
	}
	bt.retry.attempts++
	b.counters.requests.Add(1)
	b.counters.eventsSent.Add(uint64(len(bt.events)))

	resp, err := b.sender.Send(b.ctx, bt.pixel.id, req)
	if err == nil {
		if resp != nil && resp.EventsReceived == len(bt.events) {
			b.releaseSlot()
			b.counters.eventsDelivered.Add(uint64(len(bt.events)))
			b.settle(bt, Outcome{Delivered: true, FBTraceID: resp.FBTraceID, Attempts: bt.retry.attempts})
			return
		}
		err = mismatchError(bt, resp)
	}
	b.handleFailure(bt, err, time.Now())
}

// mismatchError is the error for a 200 whose events_received differs from the events sent.
// Meta documents no partial acceptance, so the sink cannot tell which events are missing
// and resends the batch (at the risk of duplicates) as a transient failure.
func mismatchError(bt *batch, resp *Response) error {
	got, trace := 0, ""
	if resp != nil {
		got, trace = resp.EventsReceived, resp.FBTraceID
	}
	return &APIError{
		PixelID:    bt.pixel.id,
		HTTPStatus: http.StatusOK,
		Graph:      GraphError{FBTraceID: trace},
		Class:      ClassTransient,
		Err:        fmt.Errorf("%w: sent %d, events_received %d", ErrEventsReceivedMismatch, len(bt.events), got),
	}
}

// releaseSlot frees a successful request's slot; the success also ends any endpoint-wide
// backoff.
func (b *Batcher) releaseSlot() {
	b.mu.Lock()
	b.inFlight--
	b.endpointFailures = 0
	b.endpointNotBefore = time.Time{}
	b.mu.Unlock()
	b.nudge()
}

// endpointDown reports whether a failure says the endpoint as a whole is unavailable: no
// answer at all, or a gateway's 502/503/504. A Graph error with a code (even a transient
// one) is an answer about this request, and stays with its batch.
func endpointDown(ae *APIError) bool {
	if ae == nil {
		return true // a transport error that the client did not wrap
	}
	if ae.Graph.Code != 0 {
		return false
	}
	switch ae.HTTPStatus {
	case 0, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// handleFailure retries, throttles, bisects or settles bt after a failed request.
func (b *Batcher) handleFailure(bt *batch, err error, now time.Time) {
	class := ClassOf(err)
	ae, _ := errors.AsType[*APIError](err)
	bt.lastErr = err
	b.counters.requestErrors.add(class, 1)
	log := b.log.With(slog.String("pixel_id", bt.pixel.id), slog.Int("events", len(bt.events)),
		slog.String("class", class.String()), slog.Int("attempt", bt.retry.attempts), slog.Any("error", err))

	b.mu.Lock()
	b.inFlight--
	if b.aborted {
		b.mu.Unlock()
		b.fail(bt, ReasonShutdown, class, err)
		return
	}
	switch {
	case class.Retryable():
		var hint time.Duration
		if ae != nil {
			hint = ae.RetryAfter
		}
		wait, ok := b.cfg.retry.next(&bt.retry, class, hint, now)
		if !ok {
			b.mu.Unlock()
			b.nudge()
			b.fail(bt, ReasonRetriesExhausted, class, err)
			return
		}
		if class != ClassRateLimit && endpointDown(ae) {
			b.endpointFailures++
			if until := now.Add(b.cfg.retry.endpointBackoff(b.endpointFailures)); until.After(b.endpointNotBefore) {
				b.endpointNotBefore = until
			}
		}
		if class == ClassRateLimit {
			if until := now.Add(wait); until.After(bt.pixel.notBefore) {
				bt.pixel.notBefore = until
			}
			// The pixel's pending items stop counting against MaxPending: wake Submits
			// waiting for room so the other pixels' events get in.
			if b.space != nil {
				close(b.space)
				b.space = nil
			}
			log.Info("capi: pixel throttled", slog.Duration("wait", wait))
		} else {
			bt.notBefore = now.Add(wait)
			log.Debug("capi: request failed, retrying", slog.Duration("wait", wait))
		}
		b.ready = append(b.ready, bt)
		b.mu.Unlock()
		b.nudge()

	case class == ClassInvalid && len(bt.events) > 1 && bisectable(ae):
		// One bad event fails the whole request. Halving isolates the offenders in
		// O(k·log n) requests for k bad events and delivers the rest.
		mid := len(bt.events) / 2
		inherited := retryState{attempts: bt.retry.attempts}
		b.ready = append(b.ready,
			&batch{pixel: bt.pixel, events: bt.events[:mid:mid], metas: bt.metas[:mid:mid], retry: inherited},
			&batch{pixel: bt.pixel, events: bt.events[mid:], metas: bt.metas[mid:], retry: inherited},
		)
		b.mu.Unlock()
		b.nudge()
		b.counters.bisections.Add(1)
		log.Debug("capi: batch rejected as invalid, bisecting")

	default:
		b.mu.Unlock()
		b.nudge()
		b.fail(bt, reasonOf(class), class, err)
	}
}

// bisectable reports whether an invalid answer may be caused by some of the events rather
// than by the request as a whole: Meta's invalid-parameter code 100, a body too large, or an
// event the client could not encode.
func bisectable(ae *APIError) bool {
	if ae == nil {
		return false
	}
	return ae.Graph.Code == codeInvalidParameter ||
		ae.HTTPStatus == http.StatusRequestEntityTooLarge ||
		errors.Is(ae.Err, ErrEncodeRequest)
}

func reasonOf(c Class) string {
	switch c {
	case ClassAuth:
		return ReasonAuth
	case ClassPermission:
		return ReasonPermission
	case ClassInvalid:
		return ReasonInvalid
	}
	return ReasonRetriesExhausted
}

// fail settles every item of bt as not delivered.
func (b *Batcher) fail(bt *batch, reason string, class Class, err error) {
	o := Outcome{Class: class, Reason: reason, Attempts: bt.retry.attempts, Err: err}
	if ae, ok := errors.AsType[*APIError](err); ok {
		g := &ae.Graph
		o.Code, o.Subcode, o.FBTraceID = g.Code, g.Subcode, g.FBTraceID
		o.Message = g.Message
		if detail := joinNonEmpty(g.UserTitle, g.UserMessage); detail != "" {
			o.Message = joinNonEmpty(o.Message, detail)
		}
	}
	if o.Message == "" && err != nil {
		o.Message = err.Error()
	}
	b.counters.eventsFailed.add(class, uint64(len(bt.events)))
	if reason != ReasonShutdown {
		b.log.Warn("capi: events not delivered",
			slog.String("pixel_id", bt.pixel.id), slog.Int("events", len(bt.events)),
			slog.String("reason", reason), slog.String("class", class.String()),
			slog.Int("code", o.Code), slog.Int("subcode", o.Subcode),
			slog.String("fbtrace_id", o.FBTraceID), slog.Int("attempts", o.Attempts),
			slog.Any("error", err))
	}
	b.settle(bt, o)
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + ": " + b
}
