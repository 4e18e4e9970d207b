" Indentation for Aethel (`.ae`): one level inside each { } block.
if exists('b:did_indent')
  finish
endif
let b:did_indent = 1

setlocal indentexpr=AethelIndent(v:lnum)
setlocal indentkeys=0{,0},0#,!^F,o,O
let b:undo_indent = 'setlocal indentexpr< indentkeys<'

if exists('*AethelIndent')
  finish
endif

function! AethelIndent(lnum) abort
  let prev = prevnonblank(a:lnum - 1)
  if prev == 0
    return 0
  endif
  " ignore a trailing comment when looking for an opening brace
  let prev_line = substitute(getline(prev), '\s*#.*$', '', '')
  let ind = indent(prev)
  if prev_line =~# '{\s*$'
    let ind += shiftwidth()
  endif
  if getline(a:lnum) =~# '^\s*}'
    let ind -= shiftwidth()
  endif
  return max([ind, 0])
endfunction
