-- `.ae` files are Aethel contracts.
vim.filetype.add({ extension = { ae = 'aethel' } })
