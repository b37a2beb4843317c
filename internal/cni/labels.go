package cni

import (
	"fmt"
	"strings"
)

// maxLabelLen is the longest label key (name part) or value allowed.
const maxLabelLen = 63

// SanitiseLabel turns a Mesos NetworkInfo label into an endpoint label the
// way Calico's CNI plugin did, so that policies written for Calico on Mesos
// keep selecting the same tasks:
//
//  1. "/" becomes ".";
//  2. every run of characters outside [-_.a-zA-Z0-9] becomes one "-";
//  3. every run of "." and "-" that contains a "." becomes one ".";
//  4. leading and trailing "." and "-" are trimmed.
//
// Calico stopped there and let the datastore refuse what was still
// invalid. Calyx instead drops such a label and says why in warn (empty
// when the label is kept): a key must be 1 to 63 characters and a value at
// most 63, both starting and ending with a letter or digit (a value may be
// empty). A leading or trailing "_" survives the steps above and is the
// usual cause.
func SanitiseLabel(key, value string) (k, v, warn string) {
	k, v = sanitiseLabelPart(key), sanitiseLabelPart(value)
	if p := labelPartProblem(k, false); p != "" {
		return k, v, fmt.Sprintf("dropping Mesos label %q=%q: key %q (sanitised) %s", key, value, k, p)
	}
	if p := labelPartProblem(v, true); p != "" {
		return k, v, fmt.Sprintf("dropping Mesos label %q=%q: value %q (sanitised) %s", key, value, v, p)
	}
	return k, v, ""
}

func labelChar(r rune) bool {
	return r == '-' || r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func alnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

func sanitiseLabelPart(s string) string {
	s = strings.ReplaceAll(s, "/", ".")
	// Step 2: runs of invalid characters become "-".
	var b strings.Builder
	inBad := false
	for _, r := range s {
		if labelChar(r) {
			b.WriteRune(r)
			inBad = false
			continue
		}
		if !inBad {
			b.WriteByte('-')
		}
		inBad = true
	}
	s = b.String()
	// Step 3: runs of [.-] holding a "." become ".".
	b.Reset()
	for i := 0; i < len(s); {
		if s[i] != '.' && s[i] != '-' {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && (s[j] == '.' || s[j] == '-') {
			j++
		}
		if strings.Contains(s[i:j], ".") {
			b.WriteByte('.')
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	// Step 4.
	return strings.Trim(b.String(), ".-")
}

// labelPartProblem says why s is not a valid label key (or value, which may
// be empty), or returns "". s has been sanitised, so only its length and
// its first and last characters can be wrong.
func labelPartProblem(s string, isValue bool) string {
	switch {
	case s == "" && isValue:
		return ""
	case s == "":
		return "is empty"
	case len(s) > maxLabelLen:
		return fmt.Sprintf("is %d characters long: at most %d allowed", len(s), maxLabelLen)
	case !alnum(s[0]) || !alnum(s[len(s)-1]):
		return "must start and end with a letter or digit"
	}
	return ""
}
