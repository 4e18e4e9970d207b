-- Buffer options for Aethel (`.ae`) files: `#` comments, 4-space indentation.
if vim.b.did_ftplugin then
  return
end
vim.b.did_ftplugin = 1

vim.bo.commentstring = '# %s'
vim.bo.comments = ':#'
vim.bo.expandtab = true
vim.bo.shiftwidth = 4
vim.bo.softtabstop = 4
vim.bo.formatoptions = vim.bo.formatoptions:gsub('[to]', '') .. 'cqj'
vim.opt_local.iskeyword:append('_')

vim.b.undo_ftplugin = 'setlocal commentstring< comments< expandtab< shiftwidth< softtabstop< formatoptions< iskeyword<'
