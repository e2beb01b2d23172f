package middleware

import "net/http"

// OtherMethod is the method label of any request whose method is not one of
// the standard methods of RFC 9110 and RFC 5789, so that arbitrary methods
// cannot create series.
const OtherMethod = "OTHER"

// numMethods is the number of method label values: the nine standard
// methods and OtherMethod.
const numMethods = 10

// method maps a request method to an index below numMethods and its label
// value. Methods are case-sensitive (RFC 9110): "get" is OtherMethod.
func method(m string) (int, string) {
	switch m {
	case http.MethodGet:
		return 0, http.MethodGet
	case http.MethodHead:
		return 1, http.MethodHead
	case http.MethodPost:
		return 2, http.MethodPost
	case http.MethodPut:
		return 3, http.MethodPut
	case http.MethodPatch:
		return 4, http.MethodPatch
	case http.MethodDelete:
		return 5, http.MethodDelete
	case http.MethodConnect:
		return 6, http.MethodConnect
	case http.MethodOptions:
		return 7, http.MethodOptions
	case http.MethodTrace:
		return 8, http.MethodTrace
	}
	return 9, OtherMethod
}
