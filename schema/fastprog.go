package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

//go:generate go test -run TestGeneratedDecoders -update

// A fastProg decodes bodies of one writer schema straight into an Event. It is compiled
// from the writer schema and the field names toEvent reads (the field sets below), and
// reproduces toEvent's result for every body it accepts. It does not reproduce errors:
// on anything toEvent or goavro would reject — and on the few shapes it does not handle
// at run time — it gives up, and the caller decodes the body again with goavro, which
// then produces the error with its exact Reason and Field. Failures are rare (they are
// dead-lettered), so they may cost what every record used to cost.
type fastProg struct {
	root *fastRec
	// gen numbers the decoder generated for this writer schema (fastgen.go): straight-line
	// code doing what record(root, o, 0) does. It is 0 unless the schema is one of the
	// embedded ones. steps is the program's steps in progSteps order, for the fields the
	// generated code leaves to reader.field.
	gen   int
	steps []*fastStep
}

// conv is the conversion toEvent applies to a field (mapper.str, mapper.strs, …).
type conv uint8

const (
	cStr       conv = iota + 1 // mapper.str and mapper.required
	cStrs                      // mapper.strs
	cSlots                     // mapper.slots
	cLong                      // mapper.long
	cInt32                     // mapper.int32
	cBool                      // mapper.boolean
	cOptBool                   // mapper.optBool
	cDouble                    // mapper.double
	cEventTime                 // mapper.eventTime
	cRecord                    // mapper.nested
	cContents                  // mapper.contents
)

// target is where one known field goes. Exactly the accessor matching conv is set.
type target struct {
	conv conv
	// path is the accessor's destination as Go source ("o.ev.User.FBP"), and markCode
	// the statement mark runs: the generated decoders (fastgen.go) assign them directly.
	path     string
	markCode string
	str      func(*fastOut) *string
	strs     func(*fastOut) *[]string
	long     func(*fastOut) *int64
	i32      func(*fastOut) *int32
	b        func(*fastOut) *bool
	pb       func(*fastOut) **bool
	dbl      func(*fastOut) **float64
	// sub is the nested record's fields (cRecord) or a content item's (cContents).
	sub fieldSet
	// mark records that a nested record is present (cRecord); nil when presence alone
	// changes nothing.
	mark func(*fastOut)
}

type fieldSet map[string]*target

// fastOut is the Event being built, plus the parts toEvent combines after reading them.
type fastOut struct {
	ev        Event
	eventTime int64 // as read, before the checks and the millisecond conversion

	// toEvent appends the customer record's lists to the top-level ones.
	email, phone, externalID          []string
	custEmails, custPhones, custExtID []string

	orig            OriginalEventData
	app             AppData
	store           StoreData
	hasOrig, hasApp bool
	hasStore        bool
	item            *Content // the contents item being read
}

func tStr(path string, f func(*fastOut) *string) *target {
	return &target{conv: cStr, path: path, str: f}
}
func tStrs(path string, f func(*fastOut) *[]string) *target {
	return &target{conv: cStrs, path: path, strs: f}
}
func tLong(path string, f func(*fastOut) *int64) *target {
	return &target{conv: cLong, path: path, long: f}
}
func tInt32(path string, f func(*fastOut) *int32) *target {
	return &target{conv: cInt32, path: path, i32: f}
}
func tBool(path string, f func(*fastOut) *bool) *target {
	return &target{conv: cBool, path: path, b: f}
}
func tDouble(path string, f func(*fastOut) **float64) *target {
	return &target{conv: cDouble, path: path, dbl: f}
}
func tOptBool(path string, f func(*fastOut) **bool) *target {
	return &target{conv: cOptBool, path: path, pb: f}
}
func tRecord(sub fieldSet, markCode string, mark func(*fastOut)) *target {
	return &target{conv: cRecord, sub: sub, markCode: markCode, mark: mark}
}

// The field sets mirror toEvent and its helpers in mapping.go name for name; a field
// added there must be added here too (the differential tests fail otherwise).
var (
	contentFields = fieldSet{
		"id":                tStr("o.item.ID", func(o *fastOut) *string { return &o.item.ID }),
		"quantity":          tLong("o.item.Quantity", func(o *fastOut) *int64 { return &o.item.Quantity }),
		"item_price":        tDouble("o.item.ItemPrice", func(o *fastOut) **float64 { return &o.item.ItemPrice }),
		"title":             tStr("o.item.Title", func(o *fastOut) *string { return &o.item.Title }),
		"description":       tStr("o.item.Description", func(o *fastOut) *string { return &o.item.Description }),
		"brand":             tStr("o.item.Brand", func(o *fastOut) *string { return &o.item.Brand }),
		"category":          tStr("o.item.Category", func(o *fastOut) *string { return &o.item.Category }),
		"delivery_category": tStr("o.item.DeliveryCategory", func(o *fastOut) *string { return &o.item.DeliveryCategory }),
	}
	storeFields = fieldSet{
		"store_page_id": tStr("o.store.StorePageID", func(o *fastOut) *string { return &o.store.StorePageID }),
		"brand_page_id": tStr("o.store.BrandPageID", func(o *fastOut) *string { return &o.store.BrandPageID }),
		"store_code":    tStr("o.store.StoreCode", func(o *fastOut) *string { return &o.store.StoreCode }),
	}
	customFields = fieldSet{
		"value":             tDouble("o.ev.Custom.Value", func(o *fastOut) **float64 { return &o.ev.Custom.Value }),
		"currency":          tStr("o.ev.Custom.Currency", func(o *fastOut) *string { return &o.ev.Custom.Currency }),
		"order_id":          tStr("o.ev.Custom.OrderID", func(o *fastOut) *string { return &o.ev.Custom.OrderID }),
		"item_number":       tStr("o.ev.Custom.ItemNumber", func(o *fastOut) *string { return &o.ev.Custom.ItemNumber }),
		"content_ids":       tStrs("o.ev.Custom.ContentIDs", func(o *fastOut) *[]string { return &o.ev.Custom.ContentIDs }),
		"content_type":      tStr("o.ev.Custom.ContentType", func(o *fastOut) *string { return &o.ev.Custom.ContentType }),
		"contents":          {conv: cContents, sub: contentFields},
		"content_name":      tStr("o.ev.Custom.ContentName", func(o *fastOut) *string { return &o.ev.Custom.ContentName }),
		"content_category":  tStr("o.ev.Custom.ContentCategory", func(o *fastOut) *string { return &o.ev.Custom.ContentCategory }),
		"predicted_ltv":     tDouble("o.ev.Custom.PredictedLTV", func(o *fastOut) **float64 { return &o.ev.Custom.PredictedLTV }),
		"net_revenue":       tDouble("o.ev.Custom.NetRevenue", func(o *fastOut) **float64 { return &o.ev.Custom.NetRevenue }),
		"num_items":         tLong("o.ev.Custom.NumItems", func(o *fastOut) *int64 { return &o.ev.Custom.NumItems }),
		"search_string":     tStr("o.ev.Custom.SearchString", func(o *fastOut) *string { return &o.ev.Custom.SearchString }),
		"status":            tStr("o.ev.Custom.Status", func(o *fastOut) *string { return &o.ev.Custom.Status }),
		"delivery_category": tStr("o.ev.Custom.DeliveryCategory", func(o *fastOut) *string { return &o.ev.Custom.DeliveryCategory }),
		"store_data":        tRecord(storeFields, "o.hasStore = true", func(o *fastOut) { o.hasStore = true }),
	}
	customerFields = fieldSet{
		"emails":        tStrs("o.custEmails", func(o *fastOut) *[]string { return &o.custEmails }),
		"phones":        tStrs("o.custPhones", func(o *fastOut) *[]string { return &o.custPhones }),
		"first_name":    tStrs("o.ev.User.FirstNames", func(o *fastOut) *[]string { return &o.ev.User.FirstNames }),
		"last_name":     tStrs("o.ev.User.LastNames", func(o *fastOut) *[]string { return &o.ev.User.LastNames }),
		"date_of_birth": tStrs("o.ev.User.DatesOfBirth", func(o *fastOut) *[]string { return &o.ev.User.DatesOfBirth }),
		"gender":        tStrs("o.ev.User.Genders", func(o *fastOut) *[]string { return &o.ev.User.Genders }),
		"city":          tStrs("o.ev.User.Cities", func(o *fastOut) *[]string { return &o.ev.User.Cities }),
		"state":         tStrs("o.ev.User.States", func(o *fastOut) *[]string { return &o.ev.User.States }),
		"zip":           tStrs("o.ev.User.Zips", func(o *fastOut) *[]string { return &o.ev.User.Zips }),
		"country":       tStrs("o.ev.User.Countries", func(o *fastOut) *[]string { return &o.ev.User.Countries }),
		"external_id":   tStrs("o.custExtID", func(o *fastOut) *[]string { return &o.custExtID }),
		// toEvent sets LeadID only from a non-empty customer lead_id, and nothing else sets
		// it, so assigning is the same.
		"lead_id":                      tStr("o.ev.User.LeadID", func(o *fastOut) *string { return &o.ev.User.LeadID }),
		"subscription_id":              tStr("o.ev.User.SubscriptionID", func(o *fastOut) *string { return &o.ev.User.SubscriptionID }),
		"fb_login_id":                  tStr("o.ev.User.FBLoginID", func(o *fastOut) *string { return &o.ev.User.FBLoginID }),
		"anon_id":                      tStr("o.ev.User.AnonID", func(o *fastOut) *string { return &o.ev.User.AnonID }),
		"madid":                        tStr("o.ev.User.MADID", func(o *fastOut) *string { return &o.ev.User.MADID }),
		"page_id":                      tStr("o.ev.User.PageID", func(o *fastOut) *string { return &o.ev.User.PageID }),
		"page_scoped_user_id":          tStr("o.ev.User.PageScopedUserID", func(o *fastOut) *string { return &o.ev.User.PageScopedUserID }),
		"ctwa_clid":                    tStr("o.ev.User.CTWAClid", func(o *fastOut) *string { return &o.ev.User.CTWAClid }),
		"ig_account_id":                tStr("o.ev.User.IGAccountID", func(o *fastOut) *string { return &o.ev.User.IGAccountID }),
		"ig_sid":                       tStr("o.ev.User.IGSID", func(o *fastOut) *string { return &o.ev.User.IGSID }),
		"whatsapp_business_account_id": tStr("o.ev.User.WhatsAppBusinessAccountID", func(o *fastOut) *string { return &o.ev.User.WhatsAppBusinessAccountID }),
	}
	consentFields = fieldSet{
		"ads_allowed":      tBool("o.ev.Consent.AdsAllowed", func(o *fastOut) *bool { return &o.ev.Consent.AdsAllowed }),
		"limited_data_use": tBool("o.ev.Consent.LimitedDataUse", func(o *fastOut) *bool { return &o.ev.Consent.LimitedDataUse }),
		"ldu_country":      tInt32("o.ev.Consent.LDUCountry", func(o *fastOut) *int32 { return &o.ev.Consent.LDUCountry }),
		"ldu_state":        tInt32("o.ev.Consent.LDUState", func(o *fastOut) *int32 { return &o.ev.Consent.LDUState }),
	}
	originalFields = fieldSet{
		"event_name": tStr("o.orig.EventName", func(o *fastOut) *string { return &o.orig.EventName }),
		"event_time": tLong("o.orig.EventTime", func(o *fastOut) *int64 { return &o.orig.EventTime }),
		"order_id":   tStr("o.orig.OrderID", func(o *fastOut) *string { return &o.orig.OrderID }),
		"event_id":   tStr("o.orig.EventID", func(o *fastOut) *string { return &o.orig.EventID }),
	}
	appFields = fieldSet{
		"advertiser_tracking_enabled":  tOptBool("o.app.AdvertiserTrackingEnabled", func(o *fastOut) **bool { return &o.app.AdvertiserTrackingEnabled }),
		"application_tracking_enabled": tOptBool("o.app.ApplicationTrackingEnabled", func(o *fastOut) **bool { return &o.app.ApplicationTrackingEnabled }),
		"extinfo":                      {conv: cSlots, path: "o.app.ExtInfo", strs: func(o *fastOut) *[]string { return &o.app.ExtInfo }},
		"campaign_ids":                 tStr("o.app.CampaignIDs", func(o *fastOut) *string { return &o.app.CampaignIDs }),
		"install_referrer":             tStr("o.app.InstallReferrer", func(o *fastOut) *string { return &o.app.InstallReferrer }),
		"installer_package":            tStr("o.app.InstallerPackage", func(o *fastOut) *string { return &o.app.InstallerPackage }),
		"url_schemes":                  tStrs("o.app.URLSchemes", func(o *fastOut) *[]string { return &o.app.URLSchemes }),
		"windows_attribution_id":       tStr("o.app.WindowsAttributionID", func(o *fastOut) *string { return &o.app.WindowsAttributionID }),
		"vendor_id":                    tStr("o.app.VendorID", func(o *fastOut) *string { return &o.app.VendorID }),
	}
	eventFields = fieldSet{
		"event_id":              tStr("o.ev.EventID", func(o *fastOut) *string { return &o.ev.EventID }),
		"event_name":            tStr("o.ev.EventName", func(o *fastOut) *string { return &o.ev.EventName }),
		"event_time":            {conv: cEventTime},
		"pixel_id":              tStr("o.ev.PixelID", func(o *fastOut) *string { return &o.ev.PixelID }),
		"action_source":         tStr("o.ev.ActionSource", func(o *fastOut) *string { return &o.ev.ActionSource }),
		"event_source_url":      tStr("o.ev.EventSourceURL", func(o *fastOut) *string { return &o.ev.EventSourceURL }),
		"referrer_url":          tStr("o.ev.ReferrerURL", func(o *fastOut) *string { return &o.ev.ReferrerURL }),
		"opt_out":               tBool("o.ev.OptOut", func(o *fastOut) *bool { return &o.ev.OptOut }),
		"crm_name":              tStr("o.ev.CRMName", func(o *fastOut) *string { return &o.ev.CRMName }),
		"customer_segmentation": tStr("o.ev.CustomerSegmentation", func(o *fastOut) *string { return &o.ev.CustomerSegmentation }),
		"messaging_channel":     tStr("o.ev.MessagingChannel", func(o *fastOut) *string { return &o.ev.MessagingChannel }),
		"client_ip_address":     tStr("o.ev.User.ClientIPAddress", func(o *fastOut) *string { return &o.ev.User.ClientIPAddress }),
		"client_user_agent":     tStr("o.ev.User.ClientUserAgent", func(o *fastOut) *string { return &o.ev.User.ClientUserAgent }),
		"fbp":                   tStr("o.ev.User.FBP", func(o *fastOut) *string { return &o.ev.User.FBP }),
		"fbc":                   tStr("o.ev.User.FBC", func(o *fastOut) *string { return &o.ev.User.FBC }),
		"email":                 tStrs("o.email", func(o *fastOut) *[]string { return &o.email }),
		"phone":                 tStrs("o.phone", func(o *fastOut) *[]string { return &o.phone }),
		"external_id":           tStrs("o.externalID", func(o *fastOut) *[]string { return &o.externalID }),
		"customer":              tRecord(customerFields, "", nil),
		"consent":               tRecord(consentFields, "o.ev.Consent.Known = true", func(o *fastOut) { o.ev.Consent.Known = true }),
		"custom_data":           tRecord(customFields, "", nil),
		"original_event_data":   tRecord(originalFields, "o.hasOrig = true", func(o *fastOut) { o.hasOrig = true }),
		"app_data":              tRecord(appFields, "o.hasApp = true", func(o *fastOut) { o.hasApp = true }),
	}
)

// fastRec reads one record: a step per writer field, in writer order.
type fastRec struct {
	steps []fastStep
}

type fastStep struct {
	name string // the writer field's, for the generated code's comments
	n    *fnode
	t    *target // nil: the field is not read, only skipped
	// alts has one entry per union branch of n, or a single one when n is not a union.
	// For cRecord it says what each branch means; for cContents it holds each array
	// branch's items.
	alts []fastAlt
}

// act is what a value means to mapper.nested or mapper.record.
type act uint8

const (
	actAbsent act = iota + 1 // null: the record is absent
	actRecord                // a record, read with rec
	// actEmpty: record() takes the union wrapper of a non-record branch for the record
	// itself, so the record is present with every field zero.
	actEmpty
	actFail // a type error
)

type fastAlt struct {
	act   act
	rec   *fastRec
	items []fastAlt // cContents: what each branch of the array's items means
}

// compileFast compiles the program for a record schema, or says why the schema keeps
// the goavro path.
func compileFast(root *fnode) (*fastProg, error) {
	if root.nat != nRecord {
		return nil, unsupported("top-level type is not a record")
	}
	rec, err := compileRec(root, eventFields)
	if err != nil {
		return nil, err
	}
	p := &fastProg{root: rec}
	if g, ok := generatedDecoders[progKey(root, rec)]; ok {
		p.gen, p.steps = g, progSteps(rec)
	}
	return p, nil
}

// progSteps lists a program's steps depth first, in writer order: the index a generated
// decoder refers to a step by.
func progSteps(rec *fastRec) []*fastStep {
	var out []*fastStep
	var walk func(*fastRec)
	var walkAlts func([]fastAlt)
	walkAlts = func(alts []fastAlt) {
		for _, a := range alts {
			if a.rec != nil {
				walk(a.rec)
			}
			walkAlts(a.items)
		}
	}
	walk = func(r *fastRec) {
		for i := range r.steps {
			out = append(out, &r.steps[i])
			walkAlts(r.steps[i].alts)
		}
	}
	walk(rec)
	return out
}

// progKey identifies a program: the writer schema as the fast path reads it (every
// type, name, symbol, logical type and size) and what each step does with its field.
// Two schemas with the same key decode every body alike, so a decoder generated for one
// serves the other; a stale generated decoder (the field sets changed since) matches no
// key and the interpreter runs instead.
func progKey(root *fnode, rec *fastRec) string {
	var b strings.Builder
	seen := make(map[*fnode]int)
	var node func(*fnode)
	node = func(n *fnode) {
		if id, ok := seen[n]; ok {
			fmt.Fprintf(&b, "@%d", id)
			return
		}
		seen[n] = len(seen)
		fmt.Fprintf(&b, "(%d %d %d %d %d", n.nat, n.wire, n.logical, n.scale, n.size)
		for _, s := range n.symbols {
			fmt.Fprintf(&b, " s%q", s)
		}
		for _, f := range n.fields {
			fmt.Fprintf(&b, " f%q", f.name)
			node(f.typ)
		}
		for _, br := range n.branches {
			b.WriteString(" |")
			node(br)
		}
		if n.items != nil {
			b.WriteString(" *")
			node(n.items)
		}
		b.WriteByte(')')
	}
	node(root)
	for _, st := range progSteps(rec) {
		fmt.Fprintf(&b, "\n%q", st.name)
		if st.t != nil {
			fmt.Fprintf(&b, " %d %q %q", st.t.conv, st.t.path, st.t.markCode)
		}
		for _, a := range st.alts {
			fmt.Fprintf(&b, " a%d", a.act)
			for _, ia := range a.items {
				fmt.Fprintf(&b, " i%d", ia.act)
			}
		}
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:16])
}

// alternatives returns a union's branches, or n alone.
func alternatives(n *fnode) []*fnode {
	if n.nat == nUnion {
		return n.branches
	}
	return []*fnode{n}
}

func compileRec(n *fnode, fs fieldSet) (*fastRec, error) {
	r := &fastRec{steps: make([]fastStep, len(n.fields))}
	seen := make(map[string]bool, len(n.fields))
	for i, f := range n.fields {
		if seen[f.name] {
			return nil, unsupported("duplicate field %q", f.name)
		}
		seen[f.name] = true
		st := fastStep{name: f.name, n: f.typ, t: fs[f.name]}
		if st.t != nil {
			var err error
			if st.alts, err = compileField(st.t, f.typ); err != nil {
				return nil, fmt.Errorf("field %q: %w", f.name, err)
			}
		}
		r.steps[i] = st
	}
	return r, nil
}

func compileField(t *target, n *fnode) ([]fastAlt, error) {
	union := n.nat == nUnion
	if !union && (n.nat == nRecord || n.nat == nMap) && t.conv != cRecord {
		// mapping.union unwraps any one-entry map, so what toEvent reads from a record or
		// map here depends on the data.
		return nil, unsupported("record or map where a value is expected")
	}
	switch t.conv {
	case cStrs, cSlots:
		for _, b := range alternatives(n) {
			if b.nat == nArray && (b.items.nat == nRecord || b.items.nat == nMap) {
				return nil, unsupported("array of records or maps where strings are expected")
			}
		}
	case cRecord:
		var alts []fastAlt
		for _, b := range alternatives(n) {
			a, err := compileNested(b, union, t.sub)
			if err != nil {
				return nil, err
			}
			alts = append(alts, a)
		}
		return alts, nil
	case cContents:
		var alts []fastAlt
		for _, b := range alternatives(n) {
			var a fastAlt
			switch b.nat {
			case nNull:
				a.act = actAbsent
			case nArray:
				a.act = actRecord
				for _, ib := range alternatives(b.items) {
					ia, err := compileNested(ib, b.items.nat == nUnion, t.sub)
					if err != nil {
						return nil, err
					}
					if ia.act == actAbsent {
						ia.act = actFail // record(nil) is a type error in contents
					}
					a.items = append(a.items, ia)
				}
			default:
				a.act = actFail
			}
			alts = append(alts, a)
		}
		return alts, nil
	}
	return nil, nil
}

// compileNested compiles what mapper.record makes of one alternative b of a nested
// record's type; wrapped says whether goavro wraps it in a union.
func compileNested(b *fnode, wrapped bool, fs fieldSet) (fastAlt, error) {
	switch b.nat {
	case nNull:
		return fastAlt{act: actAbsent}, nil
	case nMap:
		return fastAlt{}, unsupported("map where a record is expected")
	case nRecord:
		if !wrapped && len(b.fields) == 1 {
			switch b.fields[0].typ.nat {
			case nRecord, nMap, nUnion:
				// record() would take this record for a union wrapper and read its field.
				return fastAlt{}, unsupported("one-field record holding a map value")
			}
		}
		rec, err := compileRec(b, fs)
		if err != nil {
			return fastAlt{}, err
		}
		return fastAlt{act: actRecord, rec: rec}, nil
	}
	if wrapped {
		return fastAlt{act: actEmpty}, nil
	}
	return fastAlt{act: actFail}, nil
}
