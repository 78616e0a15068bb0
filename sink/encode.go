package sink

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"unicode/utf8"
)

// This file writes the request body by hand. encoding/json's reflection walked every field
// of every event and cost about 9% of the relay's CPU. The output must stay byte-for-byte
// what json.NewEncoder with SetEscapeHTML(false) produced for the request (wireRequest in
// encode_test.go is that reference), trailing newline included:
// TestAppendRequestMatchesEncodingJSON and FuzzAppendRequest hold it to that, so Meta, the
// golden tests and anyone diffing bodies see no change. A field added to Event
// and its parts must be added here too: the differential test fails until it is.
//
// Keys are written with a leading comma; appendKey drops it for an object's first field,
// which avoids tracking "first" flags through the many omitempty fields.

// appendRequest appends the JSON body of a request: req's fields followed by the
// credentials, and a newline. It fails only for values JSON cannot represent (NaN or
// infinite floats, malformed json.Number), with the error encoding/json would return; dst
// is then to be discarded.
func appendRequest(dst []byte, req *Request, token, proof string) ([]byte, error) {
	dst = append(dst, '{')
	obj := len(dst)
	if req != nil { // encoding/json skips the fields of a nil embedded pointer
		dst = appendKey(dst, obj, `,"data":`)
		if req.Data == nil {
			dst = append(dst, "null"...)
		} else {
			dst = append(dst, '[')
			for i := range req.Data {
				if i > 0 {
					dst = append(dst, ',')
				}
				if req.Data[i] == nil {
					dst = append(dst, "null"...) // as encoding/json writes a nil pointer
					continue
				}
				var err error
				if dst, err = appendEvent(dst, req.Data[i]); err != nil {
					return dst, err
				}
			}
			dst = append(dst, ']')
		}
		dst = appendStringField(dst, obj, `,"partner_agent":`, req.PartnerAgent)
		dst = appendStringField(dst, obj, `,"test_event_code":`, req.TestEventCode)
	}
	dst = appendKey(dst, obj, `,"access_token":`)
	dst = appendString(dst, token)
	dst = appendStringField(dst, obj, `,"appsecret_proof":`, proof)
	return append(dst, '}', '\n'), nil
}

// appendEvent appends ev as one element of "data".
func appendEvent(dst []byte, ev *Event) ([]byte, error) {
	var err error
	dst = append(dst, '{')
	obj := len(dst)
	dst = appendKey(dst, obj, `,"event_name":`)
	dst = appendString(dst, ev.EventName)
	dst = appendKey(dst, obj, `,"event_time":`)
	dst = strconv.AppendInt(dst, ev.EventTime, 10)
	dst = appendStringField(dst, obj, `,"event_id":`, ev.EventID)
	dst = appendKey(dst, obj, `,"action_source":`)
	dst = appendString(dst, ev.ActionSource)
	dst = appendStringField(dst, obj, `,"event_source_url":`, ev.EventSourceURL)
	dst = appendStringField(dst, obj, `,"referrer_url":`, ev.ReferrerURL)
	if ev.OptOut {
		dst = appendKey(dst, obj, `,"opt_out":`)
		dst = append(dst, "true"...)
	}
	dst = appendStringField(dst, obj, `,"messaging_channel":`, ev.MessagingChannel)
	dst = appendStringField(dst, obj, `,"customer_segmentation":`, ev.CustomerSegmentation)
	dst = appendKey(dst, obj, `,"user_data":`)
	if dst, err = appendUserData(dst, &ev.User); err != nil {
		return dst, err
	}
	if ev.Custom != nil {
		dst = appendKey(dst, obj, `,"custom_data":`)
		if dst, err = appendCustomData(dst, ev.Custom); err != nil {
			return dst, err
		}
	}
	if ev.App != nil {
		dst = appendKey(dst, obj, `,"app_data":`)
		dst = appendAppData(dst, ev.App)
	}
	if o := ev.OriginalEventData; o != nil {
		dst = appendKey(dst, obj, `,"original_event_data":`)
		dst = append(dst, '{')
		oobj := len(dst)
		dst = appendStringField(dst, oobj, `,"event_name":`, o.EventName)
		if o.EventTime != 0 {
			dst = appendKey(dst, oobj, `,"event_time":`)
			dst = strconv.AppendInt(dst, o.EventTime, 10)
		}
		dst = appendStringField(dst, oobj, `,"order_id":`, o.OrderID)
		dst = appendStringField(dst, oobj, `,"event_id":`, o.EventID)
		dst = append(dst, '}')
	}
	dst = appendStringsField(dst, obj, `,"data_processing_options":`, ev.DataProcessingOptions)
	if p := ev.DataProcessingOptionsCountry; p != nil {
		dst = appendKey(dst, obj, `,"data_processing_options_country":`)
		dst = strconv.AppendInt(dst, int64(*p), 10)
	}
	if p := ev.DataProcessingOptionsState; p != nil {
		dst = appendKey(dst, obj, `,"data_processing_options_state":`)
		dst = strconv.AppendInt(dst, int64(*p), 10)
	}
	return append(dst, '}'), nil
}

func appendUserData(dst []byte, u *UserData) ([]byte, error) {
	var err error
	dst = append(dst, '{')
	obj := len(dst)
	dst = appendStringsField(dst, obj, `,"em":`, u.Em)
	dst = appendStringsField(dst, obj, `,"ph":`, u.Ph)
	dst = appendStringsField(dst, obj, `,"fn":`, u.Fn)
	dst = appendStringsField(dst, obj, `,"ln":`, u.Ln)
	dst = appendStringsField(dst, obj, `,"db":`, u.Db)
	dst = appendStringsField(dst, obj, `,"ge":`, u.Ge)
	dst = appendStringsField(dst, obj, `,"ct":`, u.Ct)
	dst = appendStringsField(dst, obj, `,"st":`, u.St)
	dst = appendStringsField(dst, obj, `,"zp":`, u.Zp)
	dst = appendStringsField(dst, obj, `,"country":`, u.Country)
	dst = appendStringsField(dst, obj, `,"external_id":`, u.ExternalID)
	dst = appendStringField(dst, obj, `,"client_ip_address":`, u.ClientIPAddress)
	dst = appendStringField(dst, obj, `,"client_user_agent":`, u.ClientUserAgent)
	dst = appendStringField(dst, obj, `,"fbc":`, u.FBC)
	dst = appendStringField(dst, obj, `,"fbp":`, u.FBP)
	dst = appendStringField(dst, obj, `,"subscription_id":`, u.SubscriptionID)
	if dst, err = appendNumberField(dst, obj, `,"fb_login_id":`, u.FBLoginID); err != nil {
		return dst, err
	}
	if dst, err = appendNumberField(dst, obj, `,"lead_id":`, u.LeadID); err != nil {
		return dst, err
	}
	dst = appendStringField(dst, obj, `,"anon_id":`, u.AnonID)
	dst = appendStringField(dst, obj, `,"madid":`, u.MADID)
	dst = appendStringField(dst, obj, `,"page_id":`, u.PageID)
	dst = appendStringField(dst, obj, `,"page_scoped_user_id":`, u.PageScopedUserID)
	dst = appendStringField(dst, obj, `,"ctwa_clid":`, u.CTWAClid)
	dst = appendStringField(dst, obj, `,"ig_account_id":`, u.IGAccountID)
	dst = appendStringField(dst, obj, `,"ig_sid":`, u.IGSID)
	dst = appendStringField(dst, obj, `,"whatsapp_business_account_id":`, u.WhatsAppBusinessAccountID)
	return append(dst, '}'), nil
}

func appendCustomData(dst []byte, c *CustomData) ([]byte, error) {
	var err error
	dst = append(dst, '{')
	obj := len(dst)
	if dst, err = appendFloatField(dst, obj, `,"value":`, c.Value); err != nil {
		return dst, err
	}
	dst = appendStringField(dst, obj, `,"currency":`, c.Currency)
	dst = appendStringField(dst, obj, `,"order_id":`, c.OrderID)
	dst = appendStringField(dst, obj, `,"item_number":`, c.ItemNumber)
	dst = appendStringsField(dst, obj, `,"content_ids":`, c.ContentIDs)
	dst = appendStringField(dst, obj, `,"content_type":`, c.ContentType)
	if len(c.Contents) > 0 {
		dst = appendKey(dst, obj, `,"contents":`)
		dst = append(dst, '[')
		for i := range c.Contents {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendContent(dst, &c.Contents[i]); err != nil {
				return dst, err
			}
		}
		dst = append(dst, ']')
	}
	dst = appendStringField(dst, obj, `,"content_name":`, c.ContentName)
	dst = appendStringField(dst, obj, `,"content_category":`, c.ContentCategory)
	if dst, err = appendFloatField(dst, obj, `,"predicted_ltv":`, c.PredictedLTV); err != nil {
		return dst, err
	}
	if dst, err = appendFloatField(dst, obj, `,"net_revenue":`, c.NetRevenue); err != nil {
		return dst, err
	}
	if c.NumItems != 0 {
		dst = appendKey(dst, obj, `,"num_items":`)
		dst = strconv.AppendInt(dst, c.NumItems, 10)
	}
	dst = appendStringField(dst, obj, `,"search_string":`, c.SearchString)
	dst = appendStringField(dst, obj, `,"status":`, c.Status)
	dst = appendStringField(dst, obj, `,"delivery_category":`, c.DeliveryCategory)
	dst = appendStringField(dst, obj, `,"customer_segmentation":`, c.CustomerSegmentation)
	if s := c.StoreData; s != nil {
		dst = appendKey(dst, obj, `,"store_data":`)
		dst = append(dst, '{')
		sobj := len(dst)
		dst = appendStringField(dst, sobj, `,"store_page_id":`, s.StorePageID)
		dst = appendStringField(dst, sobj, `,"brand_page_id":`, s.BrandPageID)
		dst = appendStringField(dst, sobj, `,"store_code":`, s.StoreCode)
		dst = append(dst, '}')
	}
	dst = appendStringField(dst, obj, `,"event_source":`, c.EventSource)
	dst = appendStringField(dst, obj, `,"lead_event_source":`, c.LeadEventSource)
	return append(dst, '}'), nil
}

func appendContent(dst []byte, c *Content) ([]byte, error) {
	var err error
	dst = append(dst, '{')
	obj := len(dst)
	dst = appendKey(dst, obj, `,"id":`)
	dst = appendString(dst, c.ID)
	if c.Quantity != 0 {
		dst = appendKey(dst, obj, `,"quantity":`)
		dst = strconv.AppendInt(dst, c.Quantity, 10)
	}
	if dst, err = appendFloatField(dst, obj, `,"item_price":`, c.ItemPrice); err != nil {
		return dst, err
	}
	dst = appendStringField(dst, obj, `,"title":`, c.Title)
	dst = appendStringField(dst, obj, `,"description":`, c.Description)
	dst = appendStringField(dst, obj, `,"brand":`, c.Brand)
	dst = appendStringField(dst, obj, `,"category":`, c.Category)
	dst = appendStringField(dst, obj, `,"delivery_category":`, c.DeliveryCategory)
	return append(dst, '}'), nil
}

func appendAppData(dst []byte, a *AppData) []byte {
	dst = append(dst, '{')
	obj := len(dst)
	dst = appendBoolPtrField(dst, obj, `,"advertiser_tracking_enabled":`, a.AdvertiserTrackingEnabled)
	dst = appendBoolPtrField(dst, obj, `,"application_tracking_enabled":`, a.ApplicationTrackingEnabled)
	dst = appendStringsField(dst, obj, `,"extinfo":`, a.ExtInfo)
	dst = appendStringField(dst, obj, `,"campaign_ids":`, a.CampaignIDs)
	dst = appendStringField(dst, obj, `,"install_referrer":`, a.InstallReferrer)
	dst = appendStringField(dst, obj, `,"installer_package":`, a.InstallerPackage)
	dst = appendStringsField(dst, obj, `,"url_schemes":`, a.URLSchemes)
	dst = appendStringField(dst, obj, `,"windows_attribution_id":`, a.WindowsAttributionID)
	dst = appendStringField(dst, obj, `,"vendor_id":`, a.VendorID)
	return append(dst, '}')
}

// appendKey appends key, which starts with a comma, dropping the comma when nothing has
// been written since the object's '{' (obj is len(dst) right after it).
func appendKey(dst []byte, obj int, key string) []byte {
	if len(dst) == obj {
		key = key[1:]
	}
	return append(dst, key...)
}

// appendStringField appends an omitempty string field.
func appendStringField(dst []byte, obj int, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendString(appendKey(dst, obj, key), s)
}

// appendStringsField appends an omitempty []string field: nil and empty are both omitted.
func appendStringsField(dst []byte, obj int, key string, ss []string) []byte {
	if len(ss) == 0 {
		return dst
	}
	dst = appendKey(dst, obj, key)
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

func appendBoolPtrField(dst []byte, obj int, key string, b *bool) []byte {
	if b == nil {
		return dst
	}
	return strconv.AppendBool(appendKey(dst, obj, key), *b)
}

// appendNumberField appends an omitempty json.Number field verbatim, after the check
// encoding/json makes, with its error.
func appendNumberField(dst []byte, obj int, key string, n json.Number) ([]byte, error) {
	if n == "" {
		return dst, nil
	}
	if !isValidNumber(string(n)) {
		return dst, fmt.Errorf("json: invalid number literal %q", string(n))
	}
	return append(appendKey(dst, obj, key), n...), nil
}

// appendFloatField appends an omitempty *float64 field.
func appendFloatField(dst []byte, obj int, key string, f *float64) ([]byte, error) {
	if f == nil {
		return dst, nil
	}
	return appendFloat(appendKey(dst, obj, key), *f)
}

// appendFloat formats f as encoding/json does (ES6 number-to-string: plain decimal between
// 1e-6 and 1e21, exponent form outside, no zero-padded exponent). NaN and ±Inf yield the
// same *json.UnsupportedValueError, so callers and logs see no difference.
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, &json.UnsupportedValueError{Value: reflect.ValueOf(f), Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does without HTML
// escaping: quote, backslash and control bytes escaped (\b \f \n \r \t short), invalid UTF-8
// bytes replaced by \ufffd, U+2028 and U+2029 escaped (JSONP safety), everything else
// verbatim. '<', '>' and '&' are not escaped: event_source_url is full of '&', and
// escaping would only grow the body.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Most values (hashes, ids, URLs) need no escaping: skip 8 plain bytes at a time.
		for i+8 <= len(s) && plain8(s[i:i+8]) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plain8 reports whether none of the 8 bytes of s needs attention from appendString: no
// byte below 0x20, no '"', no '\\', no byte of a multi-byte UTF-8 sequence. It tests all 8
// at once with the usual SWAR tricks; each test is exact, not merely a hint.
func plain8(s string) bool {
	_ = s[7]
	w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := w ^ (ones * '"')
	bs := w ^ (ones * '\\')
	special := (w - ones*0x20) | (q - ones) | (bs - ones)
	special &^= w                 // a byte counts only where the original had its high bit clear...
	return (special|w)&highs == 0 // ...and bytes with it set are non-ASCII
}

// isValidNumber reports whether s is a JSON number (RFC 8259 section 6), the check
// encoding/json applies to a json.Number before writing it.
func isValidNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = s[2:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	return s == ""
}
