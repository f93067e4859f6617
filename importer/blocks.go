package importer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// stmt is one statement of a keepalived.conf or conntrackd.conf: a
// keyword, its arguments on the same line, and the statements of its
// { } block when it has one. Both formats share this shape.
type stmt struct {
	Name     string
	Args     []string
	Block    bool
	Children []*stmt
	File     string
	Line     int
}

func (s *stmt) where() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// arg returns the i-th argument or "".
func (s *stmt) arg(i int) string {
	if i < len(s.Args) {
		return s.Args[i]
	}
	return ""
}

// ParseError is malformed input with its place.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// syntax describes the small differences of the two formats.
type syntax struct {
	comments string // characters that start a comment
	quotes   bool   // "double quoted" words
	include  bool   // keepalived's include directive
}

var (
	keepalivedSyntax = syntax{comments: "#!", quotes: true, include: true}
	conntrackdSyntax = syntax{comments: "#"}
)

const (
	maxIncludeDepth = 8
	maxStatements   = 100000
	maxNesting      = 32
)

// token is a word with the line it is on; brace tokens are "{" and "}"
// with quoted false.
type token struct {
	text   string
	quoted bool
	line   int
	eol    bool // last token of its line
}

// tokenize splits data into words, braces and line ends.
func tokenize(file string, data []byte, syn syntax) ([]token, error) {
	var toks []token
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		n := i + 1
		start := len(toks)
		for j := 0; j < len(line); {
			c := line[j]
			switch {
			case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
				j++
			case strings.IndexByte(syn.comments, c) >= 0:
				j = len(line)
			case c == '{' || c == '}':
				toks = append(toks, token{text: string(c), line: n})
				j++
			case c == '"' && syn.quotes:
				end := strings.IndexByte(line[j+1:], '"')
				if end < 0 {
					return nil, &ParseError{file, n, "unterminated quoted string"}
				}
				toks = append(toks, token{text: line[j+1 : j+1+end], quoted: true, line: n})
				j += end + 2
			default:
				k := j
				for k < len(line) && !strings.ContainsRune(" \t\r\f\v{}", rune(line[k])) &&
					strings.IndexByte(syn.comments, line[k]) < 0 && !(syn.quotes && line[k] == '"') {
					k++
				}
				toks = append(toks, token{text: line[j:k], line: n})
				j = k
			}
		}
		if len(toks) > start {
			toks[len(toks)-1].eol = true
		}
	}
	return toks, nil
}

// parser builds statements from tokens, following includes.
type parser struct {
	syn   syntax
	count int
	read  func(string) ([]byte, error)
	glob  func(string) ([]string, error)
}

// parseFile reads and parses a configuration file.
func parseFile(path string, syn syntax) ([]*stmt, error) {
	p := &parser{syn: syn, read: os.ReadFile, glob: filepath.Glob}
	data, err := p.read(path)
	if err != nil {
		return nil, err
	}
	return p.parse(path, data, 0)
}

func (p *parser) parse(file string, data []byte, depth int) ([]*stmt, error) {
	toks, err := tokenize(file, data, p.syn)
	if err != nil {
		return nil, err
	}
	pos := 0
	out, err := p.block(file, toks, &pos, 0, depth, 0)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// block parses statements until the closing brace of a block opened at
// line open (0: the file's top level).
func (p *parser) block(file string, toks []token, pos *int, open, depth, nesting int) ([]*stmt, error) {
	if nesting > maxNesting {
		return nil, &ParseError{file, open, fmt.Sprintf("blocks nested deeper than %d", maxNesting)}
	}
	var out []*stmt
	for *pos < len(toks) {
		t := toks[*pos]
		if !t.quoted && t.text == "}" {
			if open == 0 {
				return nil, &ParseError{file, t.line, `unexpected "}" (no block is open)`}
			}
			*pos++
			return out, nil
		}
		if !t.quoted && t.text == "{" {
			// An anonymous block (keepalived allows "{" alone): its
			// statements belong to the previous statement.
			if len(out) == 0 || out[len(out)-1].Block {
				return nil, &ParseError{file, t.line, `"{" without a keyword before it`}
			}
			prev := out[len(out)-1]
			*pos++
			kids, err := p.block(file, toks, pos, t.line, depth, nesting+1)
			if err != nil {
				return nil, err
			}
			prev.Block, prev.Children = true, kids
			continue
		}
		p.count++
		if p.count > maxStatements {
			return nil, &ParseError{file, t.line, fmt.Sprintf("more than %d statements", maxStatements)}
		}
		s := &stmt{Name: t.text, File: file, Line: t.line}
		*pos++
		for !t.eol && *pos < len(toks) {
			t = toks[*pos]
			if !t.quoted && t.text == "}" {
				break
			}
			*pos++
			if !t.quoted && t.text == "{" {
				kids, err := p.block(file, toks, pos, t.line, depth, nesting+1)
				if err != nil {
					return nil, err
				}
				s.Block, s.Children = true, kids
				break
			}
			s.Args = append(s.Args, t.text)
		}
		if p.syn.include && s.Name == "include" && !s.Block {
			inc, err := p.include(s, depth)
			if err != nil {
				return nil, err
			}
			out = append(out, inc...)
			continue
		}
		out = append(out, s)
	}
	if open != 0 {
		return nil, &ParseError{file, open, `block not closed (missing "}")`}
	}
	return out, nil
}

// include reads the files an include statement names (a glob, relative
// to the including file's directory).
func (p *parser) include(s *stmt, depth int) ([]*stmt, error) {
	if len(s.Args) != 1 {
		return nil, &ParseError{s.File, s.Line, "include: expected one file name or pattern"}
	}
	if depth >= maxIncludeDepth {
		return nil, &ParseError{s.File, s.Line, fmt.Sprintf("include: nested deeper than %d", maxIncludeDepth)}
	}
	pat := s.Args[0]
	if !filepath.IsAbs(pat) {
		pat = filepath.Join(filepath.Dir(s.File), pat)
	}
	files, err := p.glob(pat)
	if err != nil {
		return nil, &ParseError{s.File, s.Line, fmt.Sprintf("include %q: %v", s.Args[0], err)}
	}
	var out []*stmt
	for _, f := range files {
		data, err := p.read(f)
		if err != nil {
			return nil, &ParseError{s.File, s.Line, fmt.Sprintf("include: %v", err)}
		}
		kids, err := p.parse(f, data, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, kids...)
	}
	return out, nil
}

// word is one item of a list block with the statement it is on.
type word struct {
	text string
	s    *stmt
}

// words flattens a list block ("{ TCP UDP }" on one line or one item per
// line) into its items.
func words(b *stmt) []word {
	var out []word
	for _, c := range b.Children {
		out = append(out, word{c.Name, c})
		for _, a := range c.Args {
			out = append(out, word{a, c})
		}
	}
	return out
}
