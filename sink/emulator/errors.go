package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Graph error codes the emulator answers with [G-err, D-ref].
const (
	CodeUnknown          = 1
	CodeService          = 2
	CodePermissionDenied = 10
	CodeUserRateLimit    = 17
	CodeInvalidParameter = 100
	CodeOAuth            = 190
	CodePermissions      = 200
	CodeDeprecatedAPI    = 2635
	CodeUnknownPath      = 2500
	// CodeAdsManagementThrottle is the Ads Management business-use-case throttle [G-rl].
	CodeAdsManagementThrottle = 80004
)

// Error subcodes. Only the ones marked confirmed are Meta's; Meta's subcodes for the other
// rules are not documented, so the emulator assigns its own in a range (28049xx) that does not
// collide with the 2804xxx codes seen in the wild (2804001/7/16/17/19/48 [C-rs], whose
// meanings are unknown). Clients must therefore classify on code 100, not on these subcodes.
const (
	SubcodeObjectNotFound  = 33      // confirmed: unknown pixel or no permission [C-rs]
	SubcodeInvalidToken    = 467     // confirmed: invalid access token [G-err]
	SubcodeExpiredToken    = 463     // confirmed: access token expired [G-err]
	SubcodeThrottled       = 2446079 // confirmed: with 17 or 80004, a throttle [G-rl]
	SubcodeEventTooOld     = 2804003 // confirmed: "Event Timestamp Too Old" [C-rs]
	SubcodeMissingName     = 2804901
	SubcodeInvalidTime     = 2804902
	SubcodeEventInFuture   = 2804903
	SubcodeMissingSource   = 2804904
	SubcodeInvalidSource   = 2804905
	SubcodeWebsiteURL      = 2804906
	SubcodeWebsiteUA       = 2804907
	SubcodeNoUserData      = 2804908
	SubcodeInsufficient    = 2804909
	SubcodeUnhashed        = 2804910
	SubcodePurchase        = 2804911
	SubcodeInvalidDPO      = 2804912
	SubcodeInvalidLeadID   = 2804913
	SubcodeAppData         = 2804914
	SubcodeInvalidCustom   = 2804915
	SubcodeEmptyData       = 2804920
	SubcodeTooManyEvents   = 2804921
	SubcodePartnerAgent    = 2804922
	SubcodeMalformedBody   = 2804923
	SubcodeNotAnEvent      = 2804924
	SubcodeInvalidUserData = 2804925
)

// graphError is the "error" object of a Graph error body [G-err]. It is declared here rather
// than borrowed from package sink so that a mistake in the client's types cannot hide behind
// the same mistake in the emulator.
type graphError struct {
	Message     string          `json:"message"`
	Type        string          `json:"type"`
	Code        int             `json:"code"`
	Subcode     int             `json:"error_subcode,omitempty"`
	IsTransient bool            `json:"is_transient"`
	UserTitle   string          `json:"error_user_title,omitempty"`
	UserMsg     string          `json:"error_user_msg,omitempty"`
	ErrorData   json.RawMessage `json:"error_data,omitempty"`
	FBTraceID   string          `json:"fbtrace_id"`

	status int // HTTP status; not encoded
}

// eventError builds the code-100 answer for one invalid event. The index goes into the
// message, the user message and error_data, as Meta's offline uploads did with event_index
// [I-ocu26], so a client can drop the offender instead of bisecting.
func eventError(index, subcode int, title, msg string) *graphError {
	prefix := "event " + strconv.Itoa(index) + ": "
	return &graphError{
		Message:   "Invalid parameter: " + prefix + title,
		Type:      "OAuthException",
		Code:      CodeInvalidParameter,
		Subcode:   subcode,
		UserTitle: title,
		UserMsg:   prefix + msg,
		ErrorData: json.RawMessage(`{"event_index":` + strconv.Itoa(index) + `}`),
		status:    http.StatusBadRequest,
	}
}

// requestError builds the code-100 answer for a request-level problem.
func requestError(subcode int, title, msg string) *graphError {
	return &graphError{
		Message:   "Invalid parameter: " + title,
		Type:      "OAuthException",
		Code:      CodeInvalidParameter,
		Subcode:   subcode,
		UserTitle: title,
		UserMsg:   msg,
		status:    http.StatusBadRequest,
	}
}
