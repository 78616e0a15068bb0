package sink

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/capirelay/capirelay/schema"
)

// BuildOptions tunes Build. The zero value is ready to use.
type BuildOptions struct {
	// Now bounds dates of birth (not after Now, year 1900..Now's year). Zero means time.Now().
	Now time.Time
	// Hasher lends its scratch buffers. Reusing one per goroutine keeps Build down to the
	// allocations that end up on the wire; nil means a fresh one per call.
	Hasher *Hasher
	// SegmentationTopLevel sends customer_segmentation as a server event parameter instead
	// of inside custom_data. Meta lists it among the server event parameters but its only
	// JSON example puts it in custom_data [D-srv; capi.md §2]. custom_data is the default
	// because custom_data takes arbitrary keys, so there it can never fail a batch, whereas
	// an unexpected top-level key might; flip this if Meta's answer turns out otherwise.
	SegmentationTopLevel bool
}

// Indexes of the hashed user_data fields, used to address per-field tables.
const (
	hEm = iota
	hPh
	hFn
	hLn
	hDb
	hGe
	hCt
	hSt
	hZp
	hCountry
	hExternalID
	numHashed
)

var hashedKeys = [numHashed]string{
	hEm: fieldEm, hPh: fieldPh, hFn: fieldFn, hLn: fieldLn, hDb: fieldDb, hGe: fieldGe,
	hCt: fieldCt, hSt: fieldSt, hZp: fieldZp, hCountry: fieldCountry, hExternalID: fieldExternalID,
}

var hashedNormalizers = [numHashed]appendFunc{
	hEm: appendEmail, hPh: appendPhone, hFn: appendName, hLn: appendName,
	hDb: appendDateOfBirth, hGe: appendGender, hCt: appendCity, hSt: appendState,
	hZp: appendZip, hCountry: appendCountry, hExternalID: appendExternalID,
}

// repeatingField marks the hashed fields whose values many customers share, which a Hasher
// keeps the digests of (Hasher.digests).
var repeatingField = [numHashed]bool{hFn: true, hLn: true, hDb: true, hGe: true, hCt: true, hSt: true,
	hZp: true, hCountry: true}

// byRawValue marks the repeating fields whose digest a Hasher keys by the value as it
// arrived, which spares normalizing it too (names' Unicode folding most of all). A
// field qualifies when its normalized value depends on nothing but the raw value and,
// for zp, whether the country is the US. Birth dates do not: whether one is in the
// future depends on the clock, so they are keyed by their normalized value.
var byRawValue = [numHashed]bool{hFn: true, hLn: true, hGe: true, hCt: true, hSt: true,
	hZp: true, hCountry: true}

// buildOrder puts country first because the zip rule depends on it (US zips keep 5 digits).
var buildOrder = [numHashed]uint8{hCountry, hEm, hPh, hFn, hLn, hDb, hGe, hCt, hSt, hZp, hExternalID}

// usDigest is SHA-256("us"), Meta's country test vector [D-cust]; comparing digests lets an
// already-hashed country switch on the US zip rule too.
const usDigest = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"

func rawValues(u *schema.UserData, f uint8) []string {
	switch f {
	case hEm:
		return u.Emails
	case hPh:
		return u.Phones
	case hFn:
		return u.FirstNames
	case hLn:
		return u.LastNames
	case hDb:
		return u.DatesOfBirth
	case hGe:
		return u.Genders
	case hCt:
		return u.Cities
	case hSt:
		return u.States
	case hZp:
		return u.Zips
	case hCountry:
		return u.Countries
	case hExternalID:
		return u.ExternalIDs
	}
	return nil
}

func wireSlot(u *UserData, f uint8) *[]string {
	switch f {
	case hEm:
		return &u.Em
	case hPh:
		return &u.Ph
	case hFn:
		return &u.Fn
	case hLn:
		return &u.Ln
	case hDb:
		return &u.Db
	case hGe:
		return &u.Ge
	case hCt:
		return &u.Ct
	case hSt:
		return &u.St
	case hZp:
		return &u.Zp
	case hCountry:
		return &u.Country
	case hExternalID:
		return &u.ExternalID
	}
	return nil
}

// Build maps a decoded event to its wire form: user_data normalized and hashed, custom_data
// filled (nil when empty), CRM and LDU fields set. Values that cannot be normalized are left
// out and reported in the returned []Dropped (field and reason, never the value); whether the
// event is still sendable is Validate's call.
func Build(ev schema.Event, opts BuildOptions) (Event, []Dropped) {
	var out Event
	drops := BuildInto(&out, &ev, opts)
	return out, drops
}

// BuildInto is Build writing into *dst (every field of it) from *ev: the relay's hot path,
// where copying the two structs (~1.6 KB) in and out of Build at each call was a cost of
// its own. dst keeps strings and slices of ev, as Build's result does. dst.Custom points
// into *dst: the next BuildInto into the same Event rewrites what a copy of the previous
// result would still point to.
func BuildInto(dst *Event, ev *schema.Event, opts BuildOptions) []Dropped {
	h := opts.Hasher
	if h == nil {
		h = &Hasher{}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	*dst = Event{
		EventName:      ev.EventName,
		EventTime:      ev.EventTime,
		EventID:        ev.EventID,
		ActionSource:   strings.ToLower(strings.TrimSpace(ev.ActionSource)),
		EventSourceURL: ev.EventSourceURL,
		ReferrerURL:    ev.ReferrerURL,
		OptOut:         ev.OptOut,
	}
	var drops []Dropped
	drops = buildHashed(&dst.User, &ev.User, h, now, drops)
	drops = buildUnhashed(&dst.User, &ev.User, drops)
	if ch := strings.TrimSpace(ev.MessagingChannel); ch != "" {
		if c, ok := lookupFold(messagingChannels[:], ch); ok {
			dst.MessagingChannel = c
		} else {
			drops = append(drops, Dropped{Field: "messaging_channel", Reason: DropUnknownMessagingChannel})
		}
	}
	var segment string
	if sg := strings.TrimSpace(ev.CustomerSegmentation); sg != "" {
		if v, ok := lookupFold(customerSegments[:], sg); ok {
			segment = v
		} else {
			drops = append(drops, Dropped{Field: "customer_segmentation", Reason: DropUnknownSegmentation})
		}
	}
	if opts.SegmentationTopLevel {
		dst.CustomerSegmentation, segment = segment, ""
	}
	dst.Custom, drops = buildCustom(ev, segment, &dst.custom, drops)
	dst.App = buildApp(ev.App)
	if o := ev.OriginalEvent; o != nil && *o != (schema.OriginalEventData{}) {
		dst.OriginalEventData = &OriginalEventData{
			EventName: o.EventName, EventTime: o.EventTime, OrderID: o.OrderID, EventID: o.EventID,
		}
	}
	if ev.Consent.LimitedDataUse {
		// Meta needs the country with LDU and geolocates on 0 [D-ldu]; both go out so the
		// request says exactly what the publisher recorded. One allocation for both.
		dst.DataProcessingOptions = []string{"LDU"}
		codes := &[2]int32{ev.Consent.LDUCountry, ev.Consent.LDUState}
		dst.DataProcessingOptionsCountry = &codes[0]
		dst.DataProcessingOptionsState = &codes[1]
	}
	return drops
}

// buildHashed normalizes and hashes every hashed field into h.out, then cuts the wire strings
// out of a single string so a full user_data costs two allocations however many values it has.
func buildHashed(dst *UserData, src *schema.UserData, h *Hasher, now time.Time, drops []Dropped) []Dropped {
	h.out = h.out[:0]
	h.spans = h.spans[:0]
	// The context lives in the Hasher: passed by pointer through a func value it would
	// otherwise escape and cost an allocation per event.
	h.ctx = normContext{now: now}
	ctx := &h.ctx
	for _, f := range buildOrder {
		first := len(h.spans)
		for _, raw := range rawValues(src, f) {
			s := strings.TrimSpace(raw)
			if s == "" {
				continue // absent, not invalid
			}
			start := len(h.out)
			switch classifyHashed(s) {
			case hashedHex:
				h.out = appendLowerASCII(h.out, s)
			case hashedParamBuilder:
				h.out = append(h.out, s...)
			default:
				if byRawValue[f] {
					h.setRawKey(f, ctx.usZip && f == hZp, s)
					if h.appendCached() {
						break
					}
				}
				var reason string
				h.buf, h.tmp, reason = hashedNormalizers[f](h.buf[:0], h.tmp, s, ctx)
				if reason != "" {
					drops = append(drops, Dropped{Field: hashedKeys[f], Reason: reason})
					continue
				}
				switch {
				case byRawValue[f]:
					h.out = h.appendHashCaching(h.out) // under the raw key, which missed above
				case repeatingField[f]:
					h.setNormalizedKey()
					if !h.appendCached() {
						h.out = h.appendHashCaching(h.out)
					}
				default:
					h.out = AppendHash(h.out, h.buf)
				}
			}
			if isDuplicate(h, first, start) {
				h.out = h.out[:start]
				continue
			}
			h.spans = append(h.spans, span{field: f, start: int32(start), end: int32(len(h.out))})
		}
		if f == hCountry {
			ctx.usZip = len(h.spans)-first == 1 && string(h.out[h.spans[first].start:h.spans[first].end]) == usDigest
		}
	}
	if len(h.spans) == 0 {
		return drops
	}
	all := string(h.out)
	vals := make([]string, len(h.spans))
	for i, sp := range h.spans {
		vals[i] = all[sp.start:sp.end]
	}
	// Spans are grouped by field; each field gets a capped sub-slice so an append by a later
	// owner cannot overwrite the next field's values.
	for i := 0; i < len(h.spans); {
		j := i + 1
		for j < len(h.spans) && h.spans[j].field == h.spans[i].field {
			j++
		}
		*wireSlot(dst, h.spans[i].field) = vals[i:j:j]
		i = j
	}
	return drops
}

// isDuplicate reports whether h.out[start:] equals an output already kept for the field
// whose spans begin at first. Arrays are short, so a linear scan beats a set.
func isDuplicate(h *Hasher, first, start int) bool {
	v := h.out[start:]
	for _, sp := range h.spans[first:] {
		if bytes.Equal(h.out[sp.start:sp.end], v) {
			return true
		}
	}
	return false
}

func appendLowerASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// Enumerations Build checks values against. Values are sent in this (Meta's) spelling.
var (
	// messagingChannels [D-bm].
	messagingChannels = [...]string{"whatsapp", "messenger", "instagram"}
	// customerSegments [D-srv].
	customerSegments = [...]string{
		"new_customer_to_business", "new_customer_to_business_line", "new_customer_to_product_area",
		"new_customer_to_medium", "existing_customer_to_business", "existing_customer_to_business_line",
		"existing_customer_to_product_area", "existing_customer_to_medium", "customer_in_loyalty_program",
	}
	// deliveryCategories [D-std].
	deliveryCategories = [...]string{"in_store", "curbside", "home_delivery"}
)

// lookupFold returns the canonical member of set equal to s ignoring ASCII case, without
// allocating (the canonical string is the set's own).
func lookupFold(set []string, s string) (string, bool) {
	for _, v := range set {
		if strings.EqualFold(v, s) {
			return v, true
		}
	}
	return "", false
}

func inSet(set []string, s string) bool {
	for _, v := range set {
		if v == s {
			return true
		}
	}
	return false
}

// appAlloc lets app_data and a well-formed extinfo share one allocation.
type appAlloc struct {
	app AppData
	ext [extInfoLen]string
}

// buildApp copies app_data as published. extinfo is positional, so its slots are neither
// trimmed nor dropped; a malformed one is Validate's to reject, not Build's to repair.
func buildApp(a *schema.AppData) *AppData {
	if a == nil {
		return nil
	}
	al := &appAlloc{app: AppData{
		CampaignIDs:          strings.TrimSpace(a.CampaignIDs),
		InstallReferrer:      strings.TrimSpace(a.InstallReferrer),
		InstallerPackage:     strings.TrimSpace(a.InstallerPackage),
		WindowsAttributionID: strings.TrimSpace(a.WindowsAttributionID),
		VendorID:             strings.TrimSpace(a.VendorID),
	}}
	if len(a.ExtInfo) > 0 {
		if len(a.ExtInfo) <= extInfoLen {
			n := copy(al.ext[:], a.ExtInfo)
			al.app.ExtInfo = al.ext[:n:n]
		} else {
			al.app.ExtInfo = append([]string(nil), a.ExtInfo...)
		}
	}
	if len(a.URLSchemes) > 0 {
		al.app.URLSchemes = append([]string(nil), a.URLSchemes...)
	}
	// The bools point into the publisher's Event; copy them so the wire Event owns its data.
	if b := a.AdvertiserTrackingEnabled; b != nil {
		al.app.AdvertiserTrackingEnabled = boolPtr(*b)
	}
	if b := a.ApplicationTrackingEnabled; b != nil {
		al.app.ApplicationTrackingEnabled = boolPtr(*b)
	}
	return &al.app
}

// Static bools: pointing at these costs no allocation.
var (
	boolTrue  = true
	boolFalse = false
)

func boolPtr(b bool) *bool {
	if b {
		return &boolTrue
	}
	return &boolFalse
}

// buildUnhashed copies the parameters Meta says never to hash [D-cust]: IP, user agent, fbc,
// fbp, lead_id and the app, login and business-messaging ids. Hashing any of them would make
// them unmatchable.
func buildUnhashed(dst *UserData, src *schema.UserData, drops []Dropped) []Dropped {
	if ip := strings.TrimSpace(src.ClientIPAddress); ip != "" {
		// Meta wants a valid IPv4/IPv6 address [D-cust]; a bad one could fail the batch.
		if _, err := netip.ParseAddr(ip); err == nil {
			dst.ClientIPAddress = ip
		} else {
			drops = append(drops, Dropped{Field: "client_ip_address", Reason: DropInvalidIP})
		}
	}
	dst.ClientUserAgent = strings.TrimSpace(src.ClientUserAgent)
	dst.FBC = strings.TrimSpace(src.FBC)
	dst.FBP = strings.TrimSpace(src.FBP)
	if id := strings.TrimSpace(src.LeadID); id != "" {
		// An invalid lead_id gets the event rejected [D-crm]; better to send the event
		// without it and let the other identifiers match.
		if isLeadID(id) {
			dst.LeadID = json.Number(id)
		} else {
			drops = append(drops, Dropped{Field: "lead_id", Reason: DropInvalidLeadID})
		}
	}
	if id := strings.TrimSpace(src.FBLoginID); id != "" {
		// An integer on the wire [D-cust]; a non-digit json.Number would not even encode.
		if isDigits(id) {
			dst.FBLoginID = json.Number(id)
		} else {
			drops = append(drops, Dropped{Field: "fb_login_id", Reason: DropInvalidFBLoginID})
		}
	}
	dst.SubscriptionID = strings.TrimSpace(src.SubscriptionID)
	dst.AnonID = strings.TrimSpace(src.AnonID)
	dst.MADID = strings.TrimSpace(src.MADID)
	dst.PageID = strings.TrimSpace(src.PageID)
	dst.PageScopedUserID = strings.TrimSpace(src.PageScopedUserID)
	dst.CTWAClid = strings.TrimSpace(src.CTWAClid)
	dst.IGAccountID = strings.TrimSpace(src.IGAccountID)
	dst.IGSID = strings.TrimSpace(src.IGSID)
	dst.WhatsAppBusinessAccountID = strings.TrimSpace(src.WhatsAppBusinessAccountID)
	return drops
}

// isDigits reports a non-empty ASCII decimal string that fits a JSON number Meta reads as an
// integer id.
func isDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isLeadID accepts the 15–17 digit leadgen_id of the Lead Ads webhook [D-crm].
func isLeadID(s string) bool {
	if len(s) < 15 || len(s) > 17 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// finite guards json.Marshal: a NaN or Inf in one event would fail encoding of the whole
// batch, not just that event.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// buildCustom builds custom_data in a, which must be zero.
func buildCustom(ev *schema.Event, segment string, a *customAlloc, drops []Dropped) (*CustomData, []Dropped) {
	c := &ev.Custom
	crm := strings.TrimSpace(ev.CRMName)
	if customEmpty(c) && crm == "" && segment == "" {
		return nil, drops
	}
	cd := &a.cd
	*cd = CustomData{
		OrderID:              c.OrderID,
		ItemNumber:           c.ItemNumber,
		ContentType:          c.ContentType,
		ContentName:          c.ContentName,
		ContentCategory:      c.ContentCategory,
		NumItems:             c.NumItems,
		SearchString:         c.SearchString,
		Status:               c.Status,
		CustomerSegmentation: segment,
	}
	number := func(p *float64, field string, slot int) *float64 {
		if p == nil {
			return nil
		}
		if !finite(*p) {
			drops = append(drops, Dropped{Field: field, Reason: DropInvalidNumber})
			return nil
		}
		a.nums[slot] = *p
		return &a.nums[slot]
	}
	cd.Value = number(c.Value, "value", 0)
	cd.PredictedLTV = number(c.PredictedLTV, "predicted_ltv", 1)
	cd.NetRevenue = number(c.NetRevenue, "net_revenue", 2)
	if c.Currency != "" {
		if code, err := NormalizeCurrency(c.Currency); err == nil {
			cd.Currency = code
		} else {
			drops = append(drops, Dropped{Field: "currency", Reason: DropInvalidCurrency})
		}
	}
	var ok bool
	if cd.DeliveryCategory, ok = deliveryCategory(c.DeliveryCategory); !ok {
		drops = append(drops, Dropped{Field: "delivery_category", Reason: DropInvalidDeliveryCategory})
	}
	if len(c.ContentIDs) > 0 {
		cd.ContentIDs = append([]string(nil), c.ContentIDs...)
	}
	if n := len(c.Contents); n > 0 {
		if n <= len(a.content) {
			cd.Contents = a.content[:n:n]
		} else {
			cd.Contents = make([]Content, n)
		}
		for i, in := range c.Contents {
			out := &cd.Contents[i]
			*out = Content{ID: in.ID, Quantity: in.Quantity, Title: in.Title, Description: in.Description,
				Brand: in.Brand, Category: in.Category}
			if in.ItemPrice != nil {
				if p := *in.ItemPrice; finite(p) {
					if i < len(a.prices) {
						a.prices[i] = p
						out.ItemPrice = &a.prices[i]
					} else {
						out.ItemPrice = &p
					}
				} else {
					drops = append(drops, Dropped{Field: "contents.item_price", Reason: DropInvalidNumber})
				}
			}
			if out.DeliveryCategory, ok = deliveryCategory(in.DeliveryCategory); !ok {
				drops = append(drops, Dropped{Field: "contents.delivery_category", Reason: DropInvalidDeliveryCategory})
			}
		}
	}
	if sd := c.Store; sd != nil && *sd != (schema.StoreData{}) {
		cd.StoreData = &StoreData{StorePageID: sd.StorePageID, BrandPageID: sd.BrandPageID, StoreCode: sd.StoreCode}
	}
	if crm != "" {
		// CRM events identify themselves this way for Conversion Leads [D-crm].
		cd.EventSource = "crm"
		cd.LeadEventSource = crm
	}
	if cd.empty() {
		return nil, drops // everything in it was dropped
	}
	return cd, drops
}

// customAlloc is a CustomData with room for what usually hangs off it: value,
// predicted_ltv and net_revenue, and one content line with its price. They were four
// allocations per event, then one, and are none now that each Event has one of its own.
type customAlloc struct {
	cd      CustomData
	nums    [3]float64
	content [1]Content
	prices  [1]float64
}

// deliveryCategory normalizes a delivery_category to Meta's spelling; "" is absent (ok).
func deliveryCategory(raw string) (string, bool) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", true
	}
	return lookupFold(deliveryCategories[:], s)
}

// customEmpty reports a schema custom_data without any field set.
func customEmpty(c *schema.CustomData) bool {
	return c.Value == nil && c.Currency == "" && c.OrderID == "" && c.ItemNumber == "" &&
		len(c.ContentIDs) == 0 && c.ContentType == "" && len(c.Contents) == 0 &&
		c.ContentName == "" && c.ContentCategory == "" && c.PredictedLTV == nil &&
		c.NetRevenue == nil && c.NumItems == 0 && c.SearchString == "" && c.Status == "" &&
		c.DeliveryCategory == "" && c.Store == nil
}

func (cd *CustomData) empty() bool {
	return cd.Value == nil && cd.Currency == "" && cd.OrderID == "" && cd.ItemNumber == "" &&
		cd.ContentIDs == nil && cd.ContentType == "" && cd.Contents == nil && cd.EventSource == "" &&
		cd.ContentName == "" && cd.ContentCategory == "" && cd.PredictedLTV == nil &&
		cd.NetRevenue == nil && cd.NumItems == 0 && cd.SearchString == "" && cd.Status == "" &&
		cd.DeliveryCategory == "" && cd.CustomerSegmentation == "" && cd.StoreData == nil
}

// NormalizeCurrency trims and uppercases a currency and requires an ISO-4217 code. Uppercase
// is what the Node SDK sends; the docs show both cases [D-std, C-node].
func NormalizeCurrency(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if len(s) != 3 {
		return "", &NormalizeError{Field: "currency", Reason: DropInvalidCurrency}
	}
	var b [3]byte
	for i := 0; i < 3; i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b[i] = c
	}
	code, ok := currencyCodes[string(b[:])]
	if !ok {
		return "", &NormalizeError{Field: "currency", Reason: DropInvalidCurrency}
	}
	return code, nil
}
