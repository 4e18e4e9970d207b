" Syntax highlighting for Aethel (`.ae`) contracts.
" Keywords: intent atomic_batch guard solve verify secret external; `#` comments;
" numbers; comparison and arithmetic operators; `old_<name>` pre-state values.
if exists('b:current_syntax')
  finish
endif

syntax case match

syntax keyword aethelDeclaration intent atomic_batch nextgroup=aethelName skipwhite
syntax keyword aethelBlock guard solve verify
syntax keyword aethelModifier secret external
syntax match aethelName '\h\w*' contained

" `name: Type` in parameter lists; `key: value` in solve blocks
syntax match aethelType ':\s*\zs\u\w*'
syntax match aethelOld '\<old_\w\+\>'
syntax match aethelNumber '\<\d\+\%(\.\d\+\)\=\>'
syntax match aethelOperator '==>\|>=\|<=\|==\|!=\|[<>+*/%-]'
syntax match aethelDelimiter '[{}();:,]'

syntax keyword aethelTodo TODO FIXME XXX NOTE contained
syntax match aethelComment '#.*$' contains=aethelTodo,@Spell

highlight default link aethelDeclaration Keyword
highlight default link aethelBlock Statement
highlight default link aethelModifier StorageClass
highlight default link aethelName Function
highlight default link aethelType Type
highlight default link aethelOld Identifier
highlight default link aethelNumber Number
highlight default link aethelOperator Operator
highlight default link aethelDelimiter Delimiter
highlight default link aethelTodo Todo
highlight default link aethelComment Comment

let b:current_syntax = 'aethel'
