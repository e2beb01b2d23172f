package middleware

import "net/http"

// OtherMethod is the method label of any request whose method is not one of
// the standard methods of RFC 9110 and RFC 5789, so that arbitrary methods
// cannot create series.
const OtherMethod = "OTHER"

// normalizeMethod returns the method as a constant string (no allocation) or
// OtherMethod.
func normalizeMethod(m string) string {
	switch m {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodConnect:
		return http.MethodConnect
	case http.MethodOptions:
		return http.MethodOptions
	case http.MethodTrace:
		return http.MethodTrace
	}
	return OtherMethod
}
