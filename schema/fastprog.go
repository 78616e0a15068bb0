package schema

import (
	"fmt"
)

// A fastProg decodes bodies of one writer schema straight into an Event. It is compiled
// from the writer schema and the field names toEvent reads (the field sets below), and
// reproduces toEvent's result for every body it accepts. It does not reproduce errors:
// on anything toEvent or goavro would reject — and on the few shapes it does not handle
// at run time — it gives up, and the caller decodes the body again with goavro, which
// then produces the error with its exact Reason and Field. Failures are rare (they are
// dead-lettered), so they may cost what every record used to cost.
type fastProg struct {
	root *fastRec
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
	str  func(*fastOut) *string
	strs func(*fastOut) *[]string
	long func(*fastOut) *int64
	i32  func(*fastOut) *int32
	b    func(*fastOut) *bool
	pb   func(*fastOut) **bool
	dbl  func(*fastOut) **float64
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

func tStr(f func(*fastOut) *string) *target      { return &target{conv: cStr, str: f} }
func tStrs(f func(*fastOut) *[]string) *target   { return &target{conv: cStrs, strs: f} }
func tLong(f func(*fastOut) *int64) *target      { return &target{conv: cLong, long: f} }
func tInt32(f func(*fastOut) *int32) *target     { return &target{conv: cInt32, i32: f} }
func tBool(f func(*fastOut) *bool) *target       { return &target{conv: cBool, b: f} }
func tDouble(f func(*fastOut) **float64) *target { return &target{conv: cDouble, dbl: f} }
func tOptBool(f func(*fastOut) **bool) *target   { return &target{conv: cOptBool, pb: f} }
func tRecord(sub fieldSet, mark func(*fastOut)) *target {
	return &target{conv: cRecord, sub: sub, mark: mark}
}

// The field sets mirror toEvent and its helpers in mapping.go name for name; a field
// added there must be added here too (the differential tests fail otherwise).
var (
	contentFields = fieldSet{
		"id":                tStr(func(o *fastOut) *string { return &o.item.ID }),
		"quantity":          tLong(func(o *fastOut) *int64 { return &o.item.Quantity }),
		"item_price":        tDouble(func(o *fastOut) **float64 { return &o.item.ItemPrice }),
		"title":             tStr(func(o *fastOut) *string { return &o.item.Title }),
		"description":       tStr(func(o *fastOut) *string { return &o.item.Description }),
		"brand":             tStr(func(o *fastOut) *string { return &o.item.Brand }),
		"category":          tStr(func(o *fastOut) *string { return &o.item.Category }),
		"delivery_category": tStr(func(o *fastOut) *string { return &o.item.DeliveryCategory }),
	}
	storeFields = fieldSet{
		"store_page_id": tStr(func(o *fastOut) *string { return &o.store.StorePageID }),
		"brand_page_id": tStr(func(o *fastOut) *string { return &o.store.BrandPageID }),
		"store_code":    tStr(func(o *fastOut) *string { return &o.store.StoreCode }),
	}
	customFields = fieldSet{
		"value":             tDouble(func(o *fastOut) **float64 { return &o.ev.Custom.Value }),
		"currency":          tStr(func(o *fastOut) *string { return &o.ev.Custom.Currency }),
		"order_id":          tStr(func(o *fastOut) *string { return &o.ev.Custom.OrderID }),
		"item_number":       tStr(func(o *fastOut) *string { return &o.ev.Custom.ItemNumber }),
		"content_ids":       tStrs(func(o *fastOut) *[]string { return &o.ev.Custom.ContentIDs }),
		"content_type":      tStr(func(o *fastOut) *string { return &o.ev.Custom.ContentType }),
		"contents":          {conv: cContents, sub: contentFields},
		"content_name":      tStr(func(o *fastOut) *string { return &o.ev.Custom.ContentName }),
		"content_category":  tStr(func(o *fastOut) *string { return &o.ev.Custom.ContentCategory }),
		"predicted_ltv":     tDouble(func(o *fastOut) **float64 { return &o.ev.Custom.PredictedLTV }),
		"net_revenue":       tDouble(func(o *fastOut) **float64 { return &o.ev.Custom.NetRevenue }),
		"num_items":         tLong(func(o *fastOut) *int64 { return &o.ev.Custom.NumItems }),
		"search_string":     tStr(func(o *fastOut) *string { return &o.ev.Custom.SearchString }),
		"status":            tStr(func(o *fastOut) *string { return &o.ev.Custom.Status }),
		"delivery_category": tStr(func(o *fastOut) *string { return &o.ev.Custom.DeliveryCategory }),
		"store_data":        tRecord(storeFields, func(o *fastOut) { o.hasStore = true }),
	}
	customerFields = fieldSet{
		"emails":        tStrs(func(o *fastOut) *[]string { return &o.custEmails }),
		"phones":        tStrs(func(o *fastOut) *[]string { return &o.custPhones }),
		"first_name":    tStrs(func(o *fastOut) *[]string { return &o.ev.User.FirstNames }),
		"last_name":     tStrs(func(o *fastOut) *[]string { return &o.ev.User.LastNames }),
		"date_of_birth": tStrs(func(o *fastOut) *[]string { return &o.ev.User.DatesOfBirth }),
		"gender":        tStrs(func(o *fastOut) *[]string { return &o.ev.User.Genders }),
		"city":          tStrs(func(o *fastOut) *[]string { return &o.ev.User.Cities }),
		"state":         tStrs(func(o *fastOut) *[]string { return &o.ev.User.States }),
		"zip":           tStrs(func(o *fastOut) *[]string { return &o.ev.User.Zips }),
		"country":       tStrs(func(o *fastOut) *[]string { return &o.ev.User.Countries }),
		"external_id":   tStrs(func(o *fastOut) *[]string { return &o.custExtID }),
		// toEvent sets LeadID only from a non-empty customer lead_id, and nothing else sets
		// it, so assigning is the same.
		"lead_id":                      tStr(func(o *fastOut) *string { return &o.ev.User.LeadID }),
		"subscription_id":              tStr(func(o *fastOut) *string { return &o.ev.User.SubscriptionID }),
		"fb_login_id":                  tStr(func(o *fastOut) *string { return &o.ev.User.FBLoginID }),
		"anon_id":                      tStr(func(o *fastOut) *string { return &o.ev.User.AnonID }),
		"madid":                        tStr(func(o *fastOut) *string { return &o.ev.User.MADID }),
		"page_id":                      tStr(func(o *fastOut) *string { return &o.ev.User.PageID }),
		"page_scoped_user_id":          tStr(func(o *fastOut) *string { return &o.ev.User.PageScopedUserID }),
		"ctwa_clid":                    tStr(func(o *fastOut) *string { return &o.ev.User.CTWAClid }),
		"ig_account_id":                tStr(func(o *fastOut) *string { return &o.ev.User.IGAccountID }),
		"ig_sid":                       tStr(func(o *fastOut) *string { return &o.ev.User.IGSID }),
		"whatsapp_business_account_id": tStr(func(o *fastOut) *string { return &o.ev.User.WhatsAppBusinessAccountID }),
	}
	consentFields = fieldSet{
		"ads_allowed":      tBool(func(o *fastOut) *bool { return &o.ev.Consent.AdsAllowed }),
		"limited_data_use": tBool(func(o *fastOut) *bool { return &o.ev.Consent.LimitedDataUse }),
		"ldu_country":      tInt32(func(o *fastOut) *int32 { return &o.ev.Consent.LDUCountry }),
		"ldu_state":        tInt32(func(o *fastOut) *int32 { return &o.ev.Consent.LDUState }),
	}
	originalFields = fieldSet{
		"event_name": tStr(func(o *fastOut) *string { return &o.orig.EventName }),
		"event_time": tLong(func(o *fastOut) *int64 { return &o.orig.EventTime }),
		"order_id":   tStr(func(o *fastOut) *string { return &o.orig.OrderID }),
		"event_id":   tStr(func(o *fastOut) *string { return &o.orig.EventID }),
	}
	appFields = fieldSet{
		"advertiser_tracking_enabled":  tOptBool(func(o *fastOut) **bool { return &o.app.AdvertiserTrackingEnabled }),
		"application_tracking_enabled": tOptBool(func(o *fastOut) **bool { return &o.app.ApplicationTrackingEnabled }),
		"extinfo":                      {conv: cSlots, strs: func(o *fastOut) *[]string { return &o.app.ExtInfo }},
		"campaign_ids":                 tStr(func(o *fastOut) *string { return &o.app.CampaignIDs }),
		"install_referrer":             tStr(func(o *fastOut) *string { return &o.app.InstallReferrer }),
		"installer_package":            tStr(func(o *fastOut) *string { return &o.app.InstallerPackage }),
		"url_schemes":                  tStrs(func(o *fastOut) *[]string { return &o.app.URLSchemes }),
		"windows_attribution_id":       tStr(func(o *fastOut) *string { return &o.app.WindowsAttributionID }),
		"vendor_id":                    tStr(func(o *fastOut) *string { return &o.app.VendorID }),
	}
	eventFields = fieldSet{
		"event_id":              tStr(func(o *fastOut) *string { return &o.ev.EventID }),
		"event_name":            tStr(func(o *fastOut) *string { return &o.ev.EventName }),
		"event_time":            {conv: cEventTime},
		"pixel_id":              tStr(func(o *fastOut) *string { return &o.ev.PixelID }),
		"action_source":         tStr(func(o *fastOut) *string { return &o.ev.ActionSource }),
		"event_source_url":      tStr(func(o *fastOut) *string { return &o.ev.EventSourceURL }),
		"referrer_url":          tStr(func(o *fastOut) *string { return &o.ev.ReferrerURL }),
		"opt_out":               tBool(func(o *fastOut) *bool { return &o.ev.OptOut }),
		"crm_name":              tStr(func(o *fastOut) *string { return &o.ev.CRMName }),
		"customer_segmentation": tStr(func(o *fastOut) *string { return &o.ev.CustomerSegmentation }),
		"messaging_channel":     tStr(func(o *fastOut) *string { return &o.ev.MessagingChannel }),
		"client_ip_address":     tStr(func(o *fastOut) *string { return &o.ev.User.ClientIPAddress }),
		"client_user_agent":     tStr(func(o *fastOut) *string { return &o.ev.User.ClientUserAgent }),
		"fbp":                   tStr(func(o *fastOut) *string { return &o.ev.User.FBP }),
		"fbc":                   tStr(func(o *fastOut) *string { return &o.ev.User.FBC }),
		"email":                 tStrs(func(o *fastOut) *[]string { return &o.email }),
		"phone":                 tStrs(func(o *fastOut) *[]string { return &o.phone }),
		"external_id":           tStrs(func(o *fastOut) *[]string { return &o.externalID }),
		"customer":              tRecord(customerFields, nil),
		"consent":               tRecord(consentFields, func(o *fastOut) { o.ev.Consent.Known = true }),
		"custom_data":           tRecord(customFields, nil),
		"original_event_data":   tRecord(originalFields, func(o *fastOut) { o.hasOrig = true }),
		"app_data":              tRecord(appFields, func(o *fastOut) { o.hasApp = true }),
	}
)

// fastRec reads one record: a step per writer field, in writer order.
type fastRec struct {
	steps []fastStep
}

type fastStep struct {
	n *fnode
	t *target // nil: the field is not read, only skipped
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
	return &fastProg{root: rec}, nil
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
		st := fastStep{n: f.typ, t: fs[f.name]}
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
